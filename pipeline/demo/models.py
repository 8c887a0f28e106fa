"""The demo's segmenters, loaded once: one per variant, sharing one proposer; one request at a time.

Variants are those of :mod:`pipeline.evaluation.variants` that segment with the proposer
(``base``, ``ft_mpt``, ``adapter_ens``, ``maskpool`` by default), built from their folders
under ``artifacts/`` by :func:`pipeline.evaluation.segmenters.build_variant_segmenter` exactly
as the ``evaluate`` stage builds them, plus one crop-path variant per extra CLIP folder
(``--clip DIR``, named ``crops:<folder name>``). Each segmenter keeps its text embeddings
cached per synonym, so a vocabulary is embedded once. With the world's class list, classes
are split into seen and unseen as in the evaluation (the one-pass ensemble uses α for seen
classes and β for unseen ones); without it every class counts as unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.proposal_segmenter import ProposalSegmenter
from model.proposer import load_proposer
from pipeline.demo.why import Explanation, explain, outline_picture
from pipeline.evaluation.miou import EvalConfig, class_is_seen, resize_label, resize_short_side
from pipeline.evaluation.prediction import pixel_shares, prediction_picture
from pipeline.evaluation.segmenters import build_segmenter, build_variant_segmenter, variant_folders
from pipeline.evaluation.variants import variant

#: The variants the demo offers by default, in the order of the page.
DEFAULT_VARIANTS = ("base", "ft_mpt", "adapter_ens", "maskpool")
EXTRA_CLIP_PREFIX = "crops:"


@dataclass(frozen=True)
class VariantResult:
    """One variant's answer: labels ``H×W`` (int32, -1 unlabelled), its picture, the pixel shares
    (display name → percent, and the unlabelled percent), the seconds it took and, when asked, why."""

    variant: str
    labels: np.ndarray
    picture: Image.Image
    shares: dict[str, float]
    unlabelled: float
    seconds: float
    why: Explanation | None = None
    why_picture: Image.Image | None = None


class DemoModels:
    """Segmenters by variant name (in page order), the world's classes (or ``None``) for the seen/unseen split."""

    def __init__(self, segmenters: dict[str, ProposalSegmenter], world_classes: list[dict] | None = None):
        if not segmenters:
            raise ValueError("the demo needs at least one variant")
        self.segmenters = dict(segmenters)
        self.world_classes = world_classes
        self._lock = threading.Lock()

    @property
    def variants(self) -> list[str]:
        return list(self.segmenters)

    @classmethod
    def load(
        cls,
        artifacts: Path,
        *,
        proposer: Path | None = None,
        variants: Sequence[str] = DEFAULT_VARIANTS,
        clips: Sequence[Path] = (),
        settings: EvalConfig = EvalConfig(),
        device: torch.device | str = "cpu",
        world_classes: list[dict] | None = None,
    ) -> DemoModels:
        """Load the proposer (``artifacts/proposer`` unless given) and every variant's segmenter; every folder is
        checked before anything loads, errors name the missing one."""
        device = torch.device(device)
        proposer = artifacts / "proposer" if proposer is None else proposer
        specs = [variant(name) for name in variants]
        not_proposer = [spec.name for spec in specs if spec.is_diagnostic]
        if not_proposer:
            raise ValueError(f"the demo segments with the proposer; {', '.join(not_proposer)} cannot be shown")
        if not proposer.is_dir():
            raise FileNotFoundError(f"{proposer}: proposer folder not found (give one with --proposer)")
        for clip in clips:
            if not clip.is_dir():
                raise FileNotFoundError(f"{clip}: CLIP folder not found")
        for spec in specs:
            variant_folders(spec, artifacts)
        model = load_proposer(proposer, device)
        segmenters = {spec.name: build_variant_segmenter(spec, model, artifacts, settings, device) for spec in specs}
        for clip in clips:
            name = EXTRA_CLIP_PREFIX + clip.name
            if name in segmenters:
                raise ValueError(f"two CLIP folders are called {clip.name!r}")
            segmenters[name] = build_segmenter("crops", model, clip, settings=settings, device=device)
        return cls(segmenters, world_classes)

    def seen(self, class_names: Sequence[str]) -> np.ndarray | None:
        """``[C]`` bool: which classes the models saw labelled (see :func:`class_is_seen`); ``None`` without a world."""
        return class_is_seen(list(class_names), self.world_classes)

    def segment(
        self,
        image: np.ndarray,
        class_names: Sequence[str],
        variants: Sequence[str],
        why: bool = False,
        short_side: int | None = None,
    ) -> list[VariantResult]:
        """Each chosen variant's :class:`VariantResult` for ``image`` (``H×W×3 uint8``), in page order.

        With ``short_side``, the models see the image resized (bicubic) to that shorter side and the
        labels are resized back (nearest), as ``ovseg predict --short-side`` does: every picture and
        share is at the image's own size.
        """
        unknown = [name for name in variants if name not in self.segmenters]
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r}; choose from {', '.join(self.segmenters)}")
        if not variants:
            raise ValueError("choose at least one variant")
        class_names = list(class_names)
        seen = self.seen(class_names)
        seen_mask = None if seen is None else torch.as_tensor(seen)
        size = tuple(image.shape[:2])
        work = resize_short_side(image, short_side)
        results = []
        with self._lock, torch.no_grad():
            for name in [name for name in self.segmenters if name in variants]:
                segmenter = self.segmenters[name]
                start = time.perf_counter()
                explanation = None
                if why:
                    explanation = explain(segmenter, work, class_names, seen).at_size(size)
                    labels = explanation.labels
                else:
                    labels = resize_label(segmenter.segment(work, class_names, seen=seen_mask), size)
                picture = prediction_picture(image, labels, class_names)
                seconds = time.perf_counter() - start
                shares, unlabelled = pixel_shares(labels, class_names)
                why_picture = outline_picture(picture, explanation, class_names) if explanation else None
                results.append(
                    VariantResult(name, labels, picture, shares, unlabelled, seconds, explanation, why_picture)
                )
        return results
