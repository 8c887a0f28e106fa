"""The proposer's architecture and loss recipe, read from a small JSON file.

Like open_clip's model configs, a proposer is described by a JSON file under
``model/configs/`` (``proposer-demo.json``, ``proposer-r50.json``) or any path.
Parsing is strict: unknown keys, missing required keys and wrongly typed values
raise a ``ValueError`` that names the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

BACKBONES = ("conv", "resnet50")
NORMS = ("bn", "gn", "frozen_bn")
MASK_LOSSES = ("bce", "focal")
FEATURE_LEVELS = ("res2", "res3", "res4", "res5")


@dataclass(frozen=True)
class BackboneConfig:
    """``conv``: a small residual conv net; ``resnet50``: torchvision's, built without weights."""

    type: str = "conv"
    stem_channels: int = 16
    channels: tuple[int, ...] = (32, 64, 96, 128)  # conv only: res2..res5 widths
    blocks: tuple[int, ...] = (1, 1, 1, 1)  # conv only: residual blocks per stage
    norm: str = "gn"  # conv: bn | gn; resnet50: bn | frozen_bn
    gn_groups: int = 8


@dataclass(frozen=True)
class PixelDecoderConfig:
    """FPN over res2..res5 giving ``mask_dim``-channel per-pixel embeddings at stride 4."""

    conv_dim: int = 64
    mask_dim: int = 64
    norm: str = "gn"
    gn_groups: int = 8


@dataclass(frozen=True)
class DecoderConfig:
    """Transformer decoder: learned queries cross-attending to one backbone level."""

    num_queries: int = 24
    hidden_dim: int = 128
    num_heads: int = 4
    num_layers: int = 3
    ffn_dim: int = 256
    dropout: float = 0.0
    in_feature: str = "res5"


@dataclass(frozen=True)
class HeadConfig:
    """Class head (cosine with text embeddings, scaled) and mask head (MLP depths)."""

    class_layers: int = 2
    mask_layers: int = 3
    logit_scale_init: float = 20.0
    learn_logit_scale: bool = True
    max_logit_scale: float = 100.0


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (MaskFormer's recipe) and the Hungarian matcher's cost weights."""

    class_weight: float = 1.0
    mask_weight: float = 20.0
    dice_weight: float = 1.0
    no_object_weight: float = 0.1
    mask_loss: str = "focal"  # focal (MaskFormer) | bce
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    deep_supervision: bool = True
    cost_class: float = 1.0
    cost_mask: float = 20.0
    cost_dice: float = 1.0


@dataclass(frozen=True)
class ProposerConfig:
    """Everything needed to rebuild a proposer network and its training loss."""

    name: str
    text_dim: int  # the CLIP joint embedding size the class head projects to
    pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    size_divisibility: int = 32
    description: str = ""
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    heads: HeadConfig = field(default_factory=HeadConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        _validate(self)


def config_from_dict(data: Any, source: str = "<dict>") -> ProposerConfig:
    """Build a :class:`ProposerConfig` from parsed JSON; errors name ``source`` and the key."""
    try:
        return _build(ProposerConfig, data, source, "")
    except (TypeError, ValueError) as exc:
        if str(exc).startswith(source):
            raise ValueError(str(exc)) from None
        raise ValueError(f"{source}: {exc}") from None


def config_to_dict(config: ProposerConfig) -> dict[str, Any]:
    """Plain JSON-ready dict (tuples become lists) that :func:`config_from_dict` reads back."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_proposer_config(name_or_path: str | os.PathLike) -> ProposerConfig:
    """Read a config by name (``proposer-demo`` → ``model/configs/proposer-demo.json``) or path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("proposer-*.json"))
        raise FileNotFoundError(f"{path}: proposer config not found (known names: {known})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return config_from_dict(data, source=str(path))


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: '{prefix or '<root>'}' must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {[prefix + k for k in unknown]}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{source}: missing required key '{key}'")
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], source, key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a field typed as a dataclass
        return _build(hint, value, source, key + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{source}: '{key}' must be a list, got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        else:
            if len(value) != len(args):
                raise ValueError(f"{source}: '{key}' must have {len(args)} items, got {len(value)}")
            item_types = list(args)
        return tuple(_coerce(t, v, source, f"{key}[{i}]") for i, (t, v) in enumerate(zip(item_types, value)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {hint}")


def _validate(config: ProposerConfig) -> None:
    b, p, d, h, loss = config.backbone, config.pixel_decoder, config.decoder, config.heads, config.loss
    checks = [
        (config.text_dim > 0, "text_dim must be positive"),
        (all(s > 0 for s in config.pixel_std), "pixel_std must be positive"),
        (
            config.size_divisibility > 0 and config.size_divisibility % 32 == 0,
            "size_divisibility must be a positive multiple of 32 (the backbone's stride)",
        ),
        (b.type in BACKBONES, f"backbone.type must be one of {BACKBONES}"),
        (b.norm in NORMS, f"backbone.norm must be one of {NORMS}"),
        (b.type != "conv" or b.norm != "frozen_bn", "backbone.norm frozen_bn needs backbone.type resnet50"),
        (b.type != "resnet50" or b.norm != "gn", "backbone.norm gn is not available for resnet50"),
        (len(b.channels) == 4 and all(c > 0 for c in b.channels), "backbone.channels needs 4 positive widths"),
        (len(b.blocks) == 4 and all(n >= 0 for n in b.blocks), "backbone.blocks needs 4 counts >= 0"),
        (p.norm in ("bn", "gn"), "pixel_decoder.norm must be bn or gn"),
        (d.in_feature in FEATURE_LEVELS, f"decoder.in_feature must be one of {FEATURE_LEVELS}"),
        (d.num_queries > 0 and d.num_layers > 0, "decoder.num_queries and num_layers must be positive"),
        (d.hidden_dim % d.num_heads == 0, "decoder.hidden_dim must be divisible by decoder.num_heads"),
        (0.0 <= d.dropout < 1.0, "decoder.dropout must be in [0, 1)"),
        (h.class_layers >= 1 and h.mask_layers >= 1, "heads.class_layers and mask_layers must be >= 1"),
        (0 < h.logit_scale_init <= h.max_logit_scale, "heads.logit_scale_init must be in (0, max_logit_scale]"),
        (loss.mask_loss in MASK_LOSSES, f"loss.mask_loss must be one of {MASK_LOSSES}"),
        (0.0 < loss.no_object_weight <= 1.0, "loss.no_object_weight must be in (0, 1]"),
        (min(loss.class_weight, loss.mask_weight, loss.dice_weight) >= 0, "loss weights must be >= 0"),
        (min(loss.cost_class, loss.cost_mask, loss.cost_dice) >= 0, "matcher costs must be >= 0"),
    ]
    for group_norm, groups, channels, where in (
        (b.norm == "gn" and b.type == "conv", b.gn_groups, (b.stem_channels, *b.channels), "backbone"),
        (p.norm == "gn", p.gn_groups, (p.conv_dim, p.mask_dim), "pixel_decoder"),
    ):
        if group_norm:
            checks.append(
                (all(c % groups == 0 for c in channels), f"{where}: every width must be divisible by gn_groups")
            )
    for ok, message in checks:
        if not ok:
            raise ValueError(f"proposer config '{config.name}': {message}")
