"""Build, save and load open_clip CLIP models, offline.

``build_clip`` accepts three kinds of ``source``:

* an open_clip built-in name (``"ViT-B-16"``), with ``pretrained`` an open_clip tag
  found in the local caches, a checkpoint file, or ``""`` for random init;
* a model config JSON kept in the repository (``"model/configs/ovseg-tiny-vit.json"``,
  or just ``"ovseg-tiny-vit"`` for a file in ``model/configs/``);
* ``"local-dir:PATH"``: a folder written by :func:`save_clip_folder` (or any open_clip
  local folder with ``open_clip_config.json`` and weights).

:func:`save_clip_folder` writes exactly what ``open_clip.create_model_and_transforms(
"local-dir:FOLDER")`` loads with open_clip alone, plus ``mask_prompts.safetensors``
when the bundle carries mask prompts and ``text_prompts.safetensors`` when it carries
learned text prompts; :func:`derive_clip_folder` writes a new folder of another's files
(hard-linked) plus learned text prompts. Supported: open_clip's native CLIP (its own vision
and text transformers or ModifiedResNet) and its timm ConvNeXt image towers (the
Mask-Adapter's CLIPs, e.g. ``convnext_large_d_320``); other timm and HF towers are refused.

Names, here and in the code that uses CLIPs: a :class:`ClipBundle` is a ``bundle``, or a
``clip``/``<role>_clip`` where an object holds one for a role (a segmenter's ``clip`` and
``proposer_clip``); the ``open_clip.CLIP`` module inside it (``bundle.model``) is a ``clip_model``;
strings are a ``clip_name`` (a variant's CLIP, ``"base"`` or ``"ft_mpt"``: the folder
``artifacts/clip_<clip_name>``), a ``clip_folder`` (a folder's path) or a ``source`` (what
:func:`build_clip` builds from).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import PreprocessCfg, merge_preprocess_dict
from safetensors.torch import save_file

from core.io import atomic_dir, dumps_json, read_json
from model.mpt import PROMPTS_FILE, MaskPrompts, encode_image_with_prompts, load_mask_prompts, save_mask_prompts
from model.precision import Precision, check_portable_precision, check_precision
from model.text_prompts import TEXT_PROMPTS_FILE, TextPrompts, load_text_prompts, save_text_prompts
from model.text_tower import encode_tokens, is_native_text_tower

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR_PREFIX = "local-dir:"
CONFIG_FILE = "open_clip_config.json"
#: The template set of a CLIP folder whose config names none: OVSeg's 14 ViLD templates.
DEFAULT_TEMPLATES = "vild"
WEIGHTS_FILE = "open_clip_model.safetensors"
# The weight file names open_clip itself looks for in a local folder, in its order of preference.
_FOLDER_WEIGHT_NAMES = (
    WEIGHTS_FILE,
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)
_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
#: The precisions of a CLIP's weights (:data:`model.precision.Precision` less ``auto``).
WEIGHT_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "bf16")


@dataclass(eq=False)
class ClipBundle:
    """A CLIP model with everything needed to use and re-save it.

    ``model_cfg`` is the open_clip model config the model was built from;
    ``preprocess_cfg`` uses open_clip's PreprocessCfg keys (``size``, ``mean``,
    ``std``, ``interpolation``, ``resize_mode``, ``mode``, ``fill_color``).
    ``image_size`` (square side), ``mean`` and ``std`` (float32 ``[3]`` tensors on the
    model's device) are derived from it. ``prompts`` are optional mask prompts (MPT);
    ``text_prompts`` optional learned text prompts (zsseg.baseline), which
    :class:`model.text.TextClassifier` uses instead of templates. ``templates`` names the
    prompt template set (``model/templates/<name>.json``) its class names are embedded with;
    it travels with the folder, so every CLIP derived from one embeds names the same way.
    """

    model: open_clip.CLIP
    tokenizer: Any
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    prompts: MaskPrompts | None = None
    text_prompts: TextPrompts | None = None
    templates: str = DEFAULT_TEMPLATES
    image_size: int = field(init=False)
    mean: torch.Tensor = field(init=False, repr=False)
    std: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.image_size = _square_size(self.preprocess_cfg["size"])
        self.mean = torch.tensor(self.preprocess_cfg["mean"], dtype=torch.float32, device=self.device)
        self.std = torch.tensor(self.preprocess_cfg["std"], dtype=torch.float32, device=self.device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the image tower's first layer expects (a ViT's ``conv1``, a timm trunk's stem)."""
        visual = self.model.visual
        first = visual.conv1 if hasattr(visual, "conv1") else visual.trunk.stem
        return next(first.parameters()).dtype

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    def to(self, device: torch.device | str) -> ClipBundle:
        """Move the model, prompts and normalisation tensors to ``device`` (in place); return self."""
        self.model.to(device)
        if self.prompts is not None:
            self.prompts.to(device)
        if self.text_prompts is not None:
            self.text_prompts.to(device)
        self.mean = self.mean.to(device)
        self.std = self.std.to(device)
        return self

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids ``[N, context_length]`` on the model's device."""
        return self.tokenizer(list(texts)).to(self.device)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised float32 text embeddings ``[N, embed_dim]`` (gradients flow if enabled)."""
        if len(texts) == 0:
            return torch.empty(0, self.embed_dim, device=self.device)
        tokens = self.tokenize(texts)
        if is_native_text_tower(self.model):
            return F.normalize(encode_tokens(self.model, tokens), dim=-1).float()
        return self.model.encode_text(tokens, normalize=True).float()

    def encode_image(self, images: torch.Tensor, crop_masks: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised float32 image embeddings ``[B, embed_dim]`` of normalised images.

        With mask prompts attached and ``crop_masks`` given (``[B, H, W]`` bool, e.g.
        from :func:`model.crops.masked_crops`), background patches get the prompts;
        otherwise this is plain CLIP and ``crop_masks`` is not needed.
        """
        images = images.to(device=self.device, dtype=self.input_dtype)
        if self.prompts is not None and crop_masks is not None:
            features = encode_image_with_prompts(self.model, images, crop_masks, self.prompts)
        else:
            features = self.model.encode_image(images)
        return F.normalize(features.float(), dim=-1)


def build_clip(
    source: str,
    pretrained: str = "",
    *,
    device: torch.device | str,
    precision: Precision = "fp32",
    image_size: int | None = None,
    seed: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> ClipBundle:
    """Build a CLIP (in eval mode) from ``source`` (a model name, config or folder) and optional weights.

    ``pretrained``: ``""`` (random init, seeded by ``seed`` when given), a checkpoint
    file (``.safetensors``; ``.pt``/``.pth``/``.bin`` are read with ``weights_only=True``)
    or an open_clip tag for a built-in model name. Tags are looked up in the local
    Hugging Face and ``~/.cache/clip`` caches only, unless ``allow_download``.
    ``image_size`` overrides the tower's input size (positional embeddings of loaded
    weights are interpolated by open_clip). ``precision``: fp32, fp16 or bf16 (open_clip's
    mixed precision: matmul weights low precision, LayerNorms fp32).
    """
    check_precision(precision, "precision", WEIGHT_PRECISIONS)
    check_portable_precision(precision)
    device = torch.device(device)
    model_cfg, preprocess_cfg, checkpoint = _resolve_source(source, pretrained, cache_dir, allow_download)
    _check_native_clip(model_cfg, source)
    if image_size is not None:
        model_cfg["vision_cfg"]["image_size"] = int(image_size)

    cast_dtype = open_clip.get_cast_dtype(precision)
    if checkpoint is not None:
        clip_model = _clip_from_checkpoint(model_cfg, cast_dtype, checkpoint, source)
    else:  # initialised on the CPU: seeding (and restoring) the CPU generator is enough
        rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.default_generator.manual_seed(seed)
            clip_model = open_clip.CLIP(**copy.deepcopy(model_cfg), cast_dtype=cast_dtype)
    clip_model.to(device)
    if precision != "fp32":
        open_clip.convert_weights_to_lp(clip_model, dtype=cast_dtype)

    preprocess_cfg["size"] = _square_size(clip_model.visual.image_size)
    open_clip.set_model_preprocess_cfg(clip_model, preprocess_cfg)
    clip_model.eval()
    text_cfg = model_cfg["text_cfg"]
    tokenizer = open_clip.SimpleTokenizer(
        context_length=text_cfg.get("context_length", 77), **(text_cfg.get("tokenizer_kwargs") or {})
    )
    return ClipBundle(model=clip_model, tokenizer=tokenizer, model_cfg=model_cfg, preprocess_cfg=preprocess_cfg)


def save_clip_folder(bundle: ClipBundle, folder: str | os.PathLike) -> Path:
    """Write ``bundle`` as an open_clip local folder, atomically; return the folder.

    Contents: ``open_clip_config.json`` (``{"model_cfg", "preprocess_cfg"}``),
    ``open_clip_model.safetensors`` (the state dict) and, when the bundle has them,
    ``mask_prompts.safetensors`` and ``text_prompts.safetensors``. A previous folder is
    replaced whole.
    """
    folder = Path(folder)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in bundle.model.state_dict().items()}
    config = {"model_cfg": bundle.model_cfg, "preprocess_cfg": _jsonable(bundle.preprocess_cfg)}
    if bundle.templates != DEFAULT_TEMPLATES:  # folders of the default set keep their bytes
        config["templates"] = bundle.templates
    with atomic_dir(folder) as tmp:
        (tmp / CONFIG_FILE).write_text(dumps_json(config), encoding="utf-8")
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if bundle.prompts is not None:
            save_mask_prompts(bundle.prompts, tmp / PROMPTS_FILE)
        if bundle.text_prompts is not None:
            save_text_prompts(bundle.text_prompts, tmp / TEXT_PROMPTS_FILE, bundle.model)
    return folder


def derive_clip_folder(
    source: str | os.PathLike, folder: str | os.PathLike, *, text_prompts: TextPrompts, clip_model: torch.nn.Module
) -> Path:
    """Write ``folder`` atomically: every file of the CLIP folder ``source`` (hard-linked where the file
    system allows, else copied; a text prompts file of its own is left out) plus ``text_prompts``, learned
    on ``clip_model`` (the CLIP loaded from ``source``). DVC outputs cannot be written into another
    stage's output, so a CLIP with learned prompts is a new folder."""
    source, folder = Path(source), Path(folder)
    if not (source / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{source}: not a CLIP folder (no {CONFIG_FILE})")
    with atomic_dir(folder) as tmp:
        for path in sorted(source.iterdir()):
            if path.name == TEXT_PROMPTS_FILE:
                continue
            if not path.is_file():
                raise ValueError(f"{path}: a CLIP folder holds files only")
            try:
                os.link(path, tmp / path.name)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(path, tmp / path.name)
        save_text_prompts(text_prompts, tmp / TEXT_PROMPTS_FILE, clip_model)
    return folder


def load_clip_folder(
    folder: str | os.PathLike, device: torch.device | str, *, precision: Precision = "fp32"
) -> ClipBundle:
    """Load a folder written by :func:`save_clip_folder` (mask and text prompts included when present)."""
    folder = Path(folder)
    bundle = build_clip(f"{LOCAL_DIR_PREFIX}{folder}", device=device, precision=precision)
    bundle.templates = read_json(folder / CONFIG_FILE).get("templates", DEFAULT_TEMPLATES)
    prompts_path = folder / PROMPTS_FILE
    if prompts_path.is_file():
        prompts = load_mask_prompts(prompts_path, device=bundle.device)
        try:
            prompts.check_compatible(bundle.model.visual)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{prompts_path}: {exc}") from None
        bundle.prompts = prompts
    text_prompts_path = folder / TEXT_PROMPTS_FILE
    if text_prompts_path.is_file():
        bundle.text_prompts = load_text_prompts(text_prompts_path, bundle.model, device=bundle.device)
    return bundle


def _resolve_source(
    source: str, pretrained: str, cache_dir: str | os.PathLike | None, allow_download: bool
) -> tuple[dict[str, Any], dict[str, Any], Path | None]:
    """(model_cfg, preprocess_cfg, checkpoint path or None) for the ``source``/``pretrained`` pair."""
    preprocess_cfg = asdict(PreprocessCfg())
    if source.startswith(LOCAL_DIR_PREFIX):
        if pretrained:
            raise ValueError(
                f"pretrained={pretrained!r} cannot be combined with {source!r}: the folder holds the weights"
            )
        folder = Path(source[len(LOCAL_DIR_PREFIX) :])
        config = _read_config_file(folder / CONFIG_FILE, require_wrapper=True)
        weights = next((folder / name for name in _FOLDER_WEIGHT_NAMES if (folder / name).is_file()), None)
        if weights is None:
            raise FileNotFoundError(f"{folder}: no weights file ({WEIGHTS_FILE} or another open_clip weight name)")
        return config["model_cfg"], merge_preprocess_dict(preprocess_cfg, config.get("preprocess_cfg") or {}), weights

    config_path = _config_path(source)
    if config_path is not None:
        config = _read_config_file(config_path, require_wrapper=False)
        model_cfg = config["model_cfg"]
        preprocess_cfg = merge_preprocess_dict(preprocess_cfg, config.get("preprocess_cfg") or {})
        builtin = False
    else:
        model_cfg = open_clip.get_model_config(source)
        if model_cfg is None:
            local = sorted(p.stem for p in CONFIG_DIR.glob("*.json") if "embed_dim" in read_json(p))
            raise ValueError(
                f"unknown CLIP model {source!r}: not an open_clip built-in name (see open_clip.list_models()), "
                f"not a config in {CONFIG_DIR} ({', '.join(local) or 'none'}), not a .json file, "
                f"and not '{LOCAL_DIR_PREFIX}PATH'"
            )
        builtin = True

    if not pretrained:
        return model_cfg, preprocess_cfg, None
    candidate = Path(pretrained)
    if candidate.is_file():
        if candidate.suffix not in _CHECKPOINT_SUFFIXES:
            raise ValueError(f"{candidate}: unsupported checkpoint type (use one of {', '.join(_CHECKPOINT_SUFFIXES)})")
        return model_cfg, preprocess_cfg, candidate
    tag_cfg = open_clip.get_pretrained_cfg(source, pretrained) if builtin else {}
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(source) if builtin else []
        raise FileNotFoundError(
            f"pretrained={pretrained!r} is neither an existing checkpoint file nor an open_clip tag of {source!r}"
            + (f" (tags: {', '.join(tags)})" if tags else "")
        )
    checkpoint = _tag_checkpoint(source, pretrained, tag_cfg, cache_dir, allow_download)
    if tag_cfg.get("quick_gelu", False):
        model_cfg["quick_gelu"] = True  # the weights were trained with QuickGELU; plain GELU would be wrong
    return model_cfg, merge_preprocess_dict(preprocess_cfg, tag_cfg), checkpoint


def _config_path(model: str) -> Path | None:
    """The repo config file ``model`` names, or None for an open_clip built-in name."""
    if model.endswith(".json"):
        for path in (Path(model), _REPO_ROOT / model):
            if path.is_file():
                return path
        raise FileNotFoundError(f"{model}: model config file not found")
    named = CONFIG_DIR / f"{model}.json"
    return named if "/" not in model and named.is_file() else None


def _read_config_file(path: Path, *, require_wrapper: bool) -> dict[str, Any]:
    """``{"model_cfg": ..., "preprocess_cfg": ...}`` from an open_clip_config.json or a bare model config."""
    config = read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a model config must be a JSON object")
    if "model_cfg" not in config:
        if require_wrapper:
            raise ValueError(f"{path}: missing 'model_cfg' (expected an open_clip_config.json)")
        config = {"model_cfg": config}
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config["model_cfg"]]
    if missing:
        raise ValueError(f"{path}: model config lacks {', '.join(missing)}")
    return config


def _check_native_clip(model_cfg: dict[str, Any], source: str) -> None:
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    foreign = [
        reason
        for reason, present in (
            (
                "a timm image tower other than ConvNeXt",
                bool(vision.get("timm_model_name")) and not str(vision["timm_model_name"]).startswith("convnext"),
            ),
            ("a Hugging Face text tower", bool(text.get("hf_model_name"))),
            ("a Hugging Face tokenizer", bool(text.get("hf_tokenizer_name"))),
            ("a custom text tower", bool(model_cfg.get("custom_text"))),
            ("a multimodal decoder (CoCa)", "multimodal_cfg" in model_cfg),
        )
        if present
    ]
    if foreign:
        raise ValueError(
            f"{source}: unsupported CLIP variant ({', '.join(foreign)}); only open_clip's native CLIP is supported"
        )


def _tag_checkpoint(
    model: str, tag: str, tag_cfg: dict[str, Any], cache_dir: str | os.PathLike | None, allow_download: bool
) -> Path:
    """The local file of an open_clip pretrained tag, from the caches (or downloaded if allowed)."""
    cached = _cached_tag_file(tag_cfg, cache_dir)
    if cached is not None:
        return cached
    if allow_download:
        try:
            return Path(open_clip.download_pretrained(tag_cfg, cache_dir=str(cache_dir) if cache_dir else None))
        except Exception as exc:  # network and hub errors come in many types
            raise RuntimeError(f"downloading the weights of {model}/{tag} failed: {exc}") from exc
    source = tag_cfg.get("hf_hub") or tag_cfg.get("url") or "its source"
    raise FileNotFoundError(
        f"pretrained weights {model}/{tag} are not available offline (not in the Hugging Face cache or "
        f"~/.cache/clip) and downloading is disabled. Fetch them on a connected machine "
        f"(from {source}), then pass the file as pretrained='/path/to/weights.safetensors' (.bin/.pt also work), "
        f"or save a folder with save_clip_folder and use model='{LOCAL_DIR_PREFIX}/path/to/folder'."
    )


def _cached_tag_file(tag_cfg: dict[str, Any], cache_dir: str | os.PathLike | None) -> Path | None:
    if tag_cfg.get("file"):
        path = Path(tag_cfg["file"])
        return path if path.is_file() else None
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=None if cache_dir is None else os.fspath(cache_dir))
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    url = tag_cfg.get("url", "")
    if url:
        root = Path(cache_dir) if cache_dir else Path(os.path.expanduser("~/.cache/clip"))
        path = root / os.path.basename(url)
        if path.is_file():
            return path
    return None


def _clip_from_checkpoint(
    model_cfg: dict[str, Any], cast_dtype: torch.dtype | None, checkpoint: Path, source: str
) -> open_clip.CLIP:
    """The CLIP of ``model_cfg`` holding the weights of ``checkpoint``, in float32 on the CPU.

    Every weight is overwritten, so the CLIP is built on the meta device and the tensors open_clip's
    loader reads (with its key conversions and resizes) become its parameters (``assign``): no random
    init (most of a ViT-B/16's build time) and no second copy of the weights; from a ``.safetensors``
    file they are its pages mapped copy-on-write, read when first used. Its one computed buffer,
    the text tower's causal mask, is rebuilt. Anything else computed at construction (another
    open_clip version's buffers) gets the plain, initialised construction and a copy of the weights.

    ``open_clip.load_checkpoint`` ends in ``model.load_state_dict(state_dict, strict=strict)``; the
    instance's method is replaced for the call by one with ``assign=True``. pyproject pins open_clip
    to the releases tested to load this way (tests/model/test_clip.py checks it).
    """
    with torch.device("meta"):
        clip_model = open_clip.CLIP(**copy.deepcopy(model_cfg), cast_dtype=cast_dtype)
    computed = {
        name for name, _ in clip_model.named_buffers()
    } - clip_model.state_dict().keys()  # the non-persistent ones
    if computed != {"attn_mask"}:
        clip_model = open_clip.CLIP(**copy.deepcopy(model_cfg), cast_dtype=cast_dtype)
        _load_weights(clip_model, checkpoint, source)
        return clip_model
    context = clip_model.attn_mask.shape[0]
    clip_model.attn_mask = torch.full((context, context), float("-inf")).triu_(1)  # open_clip's build_causal_mask
    # open_clip's loader calls it
    clip_model.load_state_dict = functools.partial(clip_model.load_state_dict, assign=True)
    try:
        _load_weights(clip_model, checkpoint, source)
    finally:
        del clip_model.load_state_dict
    # a half-precision checkpoint (OpenAI's) becomes float32, as a copy into the built CLIP does
    return clip_model.float()


def _load_weights(clip_model: open_clip.CLIP, checkpoint: Path, source: str) -> None:
    try:
        open_clip.load_checkpoint(clip_model, str(checkpoint), strict=True, weights_only=True, device="cpu")
    except Exception as exc:  # pickle, safetensors and state-dict mismatch errors differ in type
        raise ValueError(f"{checkpoint}: cannot load these weights into {source!r}: {exc}") from exc


def _square_size(size: Any) -> int:
    if isinstance(size, int):
        return size
    height, width = size
    if height != width:
        raise ValueError(f"only square CLIP inputs are supported, got {height}x{width}")
    return int(height)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value
