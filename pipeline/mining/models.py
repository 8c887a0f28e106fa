"""The proposer and CLIP of the mining job, loaded once per worker process.

Beam's DaskRunner calls a DoFn's ``setup()`` once per Dask partition, not once
per worker, so the models are cached per process (:func:`shared_models`),
keyed by the folders, a fingerprint of their files (a folder rewritten between
two jobs of one process is reloaded) and the device. The CLIP's
:class:`model.text.TextClassifier` lives with it, so a noun's text embedding is
computed once per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from model.clip import ClipBundle, load_clip_folder
from model.proposer import MaskProposer, load_proposer
from model.text import TextClassifier


@dataclass(eq=False)
class MiningModels:
    """A proposer with a stored vocabulary, a CLIP and its text classifier."""

    proposer: MaskProposer
    clip: ClipBundle
    text: TextClassifier

    @property
    def device(self) -> torch.device:
        return self.clip.device

    @property
    def logit_scale(self) -> float:
        """CLIP's learned inverse temperature ``exp(logit_scale)``."""
        return float(self.clip.model.logit_scale.detach().exp().float().max())

    def noun_embeddings(self, nouns: Sequence[str]) -> torch.Tensor:
        """L2-normalised prompt-ensembled text embeddings ``[N, D]`` of ``nouns``, in order."""
        return self.text(list(nouns))


def check_proposer(proposer: MaskProposer, folder: str | os.PathLike) -> None:
    """Mining scores proposals against the proposer's training vocabulary: refuse a proposer without one."""
    if proposer.vocabulary is None:
        raise ValueError(
            f"{folder}: the proposer stores no vocabulary; mining needs its training classes to score proposals "
            "(save the trained proposer with model.vocabulary set)"
        )


def folder_fingerprint(folder: str | os.PathLike) -> tuple[tuple[str, int, int], ...]:
    """``(name, size, mtime_ns)`` of the files directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: model folder not found")
    return tuple(
        sorted((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in folder.iterdir() if path.is_file())
    )


def load_models(proposer_dir: str | os.PathLike, clip_dir: str | os.PathLike, device: str) -> MiningModels:
    """Load both models on ``device`` in eval mode (uncached)."""
    proposer = load_proposer(proposer_dir, device)
    check_proposer(proposer, proposer_dir)
    clip = load_clip_folder(clip_dir, device)
    return MiningModels(proposer=proposer, clip=clip, text=TextClassifier(clip))


@functools.lru_cache(maxsize=2)
def _cached_models(proposer_dir: str, proposer_key: tuple, clip_dir: str, clip_key: tuple, device: str) -> MiningModels:
    del proposer_key, clip_key  # part of the cache key only
    return load_models(proposer_dir, clip_dir, device)


def shared_models(proposer_dir: str | os.PathLike, clip_dir: str | os.PathLike, device: str) -> MiningModels:
    """:func:`load_models`, once per process for the same folders (and contents) and device."""
    proposer_dir, clip_dir = Path(proposer_dir).resolve(), Path(clip_dir).resolve()
    return _cached_models(
        str(proposer_dir), folder_fingerprint(proposer_dir), str(clip_dir), folder_fingerprint(clip_dir), device
    )
