"""Saving and loading a trained proposer: a JSON config and safetensors weights.

Folder layout (written atomically, the previous folder survives a failure)::

    proposer_config.json     {"format", "config", "vocabulary": [names] | null, "extra": {...}}
    proposer.safetensors     the network's state dict
    vocabulary.safetensors   {"embeddings": [C, text_dim]}, only when a vocabulary is stored
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from core.io import atomic_dir, read_json, write_json

from .config import config_from_dict, config_to_dict
from .network import MaskProposer, build_proposer
from .vocabulary import Vocabulary

FORMAT = "ovseg-proposer/1"
CONFIG_FILE = "proposer_config.json"
WEIGHTS_FILE = "proposer.safetensors"
VOCABULARY_FILE = "vocabulary.safetensors"


def save_proposer(model: MaskProposer, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (and ``model.vocabulary`` if set) to ``folder``, replacing it atomically.

    ``extra`` is any JSON-serialisable dict (training summary, seed, ...) kept in the config file.
    """
    folder = Path(folder)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    vocabulary = model.vocabulary
    if vocabulary is not None and vocabulary.embeddings.shape[1] != model.config.text_dim:
        raise ValueError(
            f"cannot save to {folder}: vocabulary embeddings have D={vocabulary.embeddings.shape[1]}, "
            f"the proposer's text_dim is {model.config.text_dim}"
        )
    manifest = {
        "format": FORMAT,
        "config": config_to_dict(model.config),
        "vocabulary": list(vocabulary.names) if vocabulary is not None else None,
        "extra": extra or {},
    }
    with atomic_dir(folder) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE))
        if vocabulary is not None:
            embeddings = vocabulary.embeddings.detach().to("cpu", torch.float32).contiguous()
            save_file({"embeddings": embeddings}, str(tmp / VOCABULARY_FILE))
        write_json(tmp / CONFIG_FILE, manifest)
    return folder


def read_proposer_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's ``proposer_config.json`` (config, vocabulary names, extra), format-checked."""
    path = Path(folder) / CONFIG_FILE
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not an ovseg proposer (expected format '{FORMAT}')")
    return manifest


def load_proposer(folder: str | os.PathLike, device: torch.device | str = "cpu") -> MaskProposer:
    """Rebuild the saved proposer on ``device`` in eval mode, with its stored vocabulary if any."""
    folder = Path(folder)
    manifest = read_proposer_manifest(folder)
    config = config_from_dict(manifest["config"], source=str(folder / CONFIG_FILE))
    model = build_proposer(config)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: proposer weights not found")
    state = load_file(str(weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights}: weights do not fit the stored config ({exc})") from None
    names = manifest.get("vocabulary")
    if names is not None:
        path = folder / VOCABULARY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the config lists a vocabulary but its embeddings are missing")
        try:
            vocabulary = Vocabulary(tuple(names), load_file(str(path))["embeddings"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: bad vocabulary ({exc})") from None
        if vocabulary.embeddings.shape[1] != config.text_dim:
            raise ValueError(
                f"{path}: vocabulary embeddings have D={vocabulary.embeddings.shape[1]}, "
                f"the config's text_dim is {config.text_dim}"
            )
        model.vocabulary = vocabulary
    model.to(device).eval()
    if model.vocabulary is not None:
        model.vocabulary = model.vocabulary.to(device)
    return model


DEFAULT_MASK_THRESHOLD = 0.4


def load_trained_proposer(folder: Path, device: torch.device) -> tuple[MaskProposer, dict[str, Any]]:
    """The proposer in ``folder`` (eval mode, on ``device``) and the ``extra`` its trainer stored.

    A proposer without a stored vocabulary cannot score its proposals: that is an error here.
    """
    extra = read_proposer_manifest(folder).get("extra") or {}
    model = load_proposer(folder, device)
    if model.vocabulary is None:
        raise ValueError(f"{folder}: the proposer stores no vocabulary (was it written by the proposer stage?)")
    return model, extra


def stored_mask_threshold(extra: dict[str, Any]) -> float:
    """The mask threshold the proposer was benchmarked with (0.4 when it recorded none)."""
    return float(extra.get("mask_threshold", DEFAULT_MASK_THRESHOLD))
