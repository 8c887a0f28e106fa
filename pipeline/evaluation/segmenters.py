"""Building the segmenter of a variant from its folders: the one place that turns settings into a segmenter.

``ovseg predict``, ``ovseg demo`` and the ``evaluate`` stage all segment through
:func:`build_segmenter`: ``crops`` is OVSeg's two-stage segmenter (a CLIP pass per
masked crop, ``lam``), ``maskpool`` and ``adapter`` classify from one CLIP pass per image
(Mask-Adapter's ensemble, ``alpha``/``beta``; ``ensemble="none"`` keeps CLIP's classes
alone); ``crops`` with ``ensemble="zsseg"`` is zsseg.baseline's seen/unseen ensemble
(``zsseg_lam``). Every other setting comes from :class:`~pipeline.evaluation.miou.EvalConfig`
(its ``precision`` is applied by the run that uses the segmenter, not here).

:func:`variant_folders` finds a named variant's folders under ``artifacts/``
(``clip_<clip>``, ``adapter_<adapter>``) with errors naming the missing one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from model.clip import ClipBundle, load_clip_folder
from model.mask_adapter import load_adapter_and_clip
from model.one_pass import OnePassSegmenter
from model.proposal_segmenter import ProposalOptions, ProposalSegmenter
from model.proposer import MaskProposer
from model.scoring import zsseg_exponents
from model.text_tower import text_tower_digest
from model.two_stage import TwoStageSegmenter
from pipeline.evaluation.miou import EvalConfig
from pipeline.evaluation.variants import CLASSIFIERS, ENSEMBLES, Variant


def variant_folders(spec: Variant, artifacts: Path) -> tuple[Path, Path | None]:
    """``(artifacts/clip_<clip>, artifacts/adapter_<adapter> or None)``; ``FileNotFoundError`` naming a missing one."""
    clip = artifacts / f"clip_{spec.clip_name}"
    if not clip.is_dir():
        raise FileNotFoundError(f"{clip}: CLIP folder of variant {spec.name!r} not found")
    if spec.adapter is None:
        return clip, None
    adapter = artifacts / f"adapter_{spec.adapter}"
    if not adapter.is_dir():
        raise FileNotFoundError(f"{adapter}: Mask-Adapter folder of variant {spec.name!r} not found")
    return clip, adapter


def build_segmenter(
    classifier: str,
    proposer: MaskProposer | None,
    clip_folder: Path,
    *,
    adapter_folder: Path | None = None,
    settings: EvalConfig = EvalConfig(),
    ensemble: str | None = None,
    proposer_clip_folder: Path | None = None,
    device: torch.device,
) -> ProposalSegmenter:
    """The segmenter of one classifier (``crops``, ``maskpool``, ``adapter``) on the CLIP of ``clip_folder``.

    ``proposer_clip_folder`` (crops): the CLIP whose text tower the proposer was trained against
    (``artifacts/clip_base``); when the classifying CLIP's text tower differs from it (a CLIP whose
    pretraining went on, ``longer``), that CLIP embeds the class names for the proposer.

    ``adapter_folder`` is required for ``adapter`` and refused otherwise. ``ensemble``: one of the
    classifier's :data:`~pipeline.evaluation.variants.ENSEMBLES` (``None``: its first). Crops: ``ovseg``
    (``lam``, ``lam_seen``, ``lam_unseen``) or ``zsseg`` (CLIP's exponent ``1 − zsseg_lam`` for seen classes,
    ``zsseg_lam`` for unseen ones); one pass: ``mask_adapter`` (``alpha``, ``beta``) or ``none`` (α = β = 1:
    CLIP's classes alone, the proposer's objectness kept).
    """
    if classifier not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {classifier!r}; choose from {', '.join(CLASSIFIERS)}")
    ensemble = ENSEMBLES[classifier][0] if ensemble is None else ensemble
    if ensemble not in ENSEMBLES[classifier]:
        raise ValueError(f"ensemble {ensemble!r}: the {classifier} classifier takes {', '.join(ENSEMBLES[classifier])}")
    if (classifier == "adapter") != (adapter_folder is not None):
        raise ValueError(
            f"classifier {classifier!r}: a Mask-Adapter folder is needed for 'adapter' and only there, "
            f"got {adapter_folder}"
        )
    clip = load_clip_folder(clip_folder, device)
    if classifier == "crops":
        return crops_segmenter(proposer, clip, settings, ensemble, proposer_clip_folder, device)
    return one_pass_segmenter(proposer, clip, settings, ensemble, adapter_folder, device)


def proposal_options(settings: EvalConfig, proposer_clip: ClipBundle | None) -> ProposalOptions:
    """What both families take from ``settings`` for their proposals (the templates are the CLIP's own)."""
    return ProposalOptions(
        mask_threshold=settings.mask_threshold, proposer_clip=proposer_clip, max_proposals=settings.max_proposals
    )


def crops_segmenter(
    proposer: MaskProposer | None,
    clip: ClipBundle,
    settings: EvalConfig,
    ensemble: str,
    proposer_clip_folder: Path | None,
    device: torch.device,
) -> TwoStageSegmenter:
    """The ``crops`` segmenter of :func:`build_segmenter`, its ensemble's exponents and proposer CLIP resolved."""
    lam_seen, lam_unseen = (
        zsseg_exponents(settings.zsseg_lam) if ensemble == "zsseg" else (settings.lam_seen, settings.lam_unseen)
    )
    proposer_clip = None
    if proposer_clip_folder is not None:  # also without a proposer: stored proposals are checked against it
        proposer_clip = load_clip_folder(proposer_clip_folder, device)
        if text_tower_digest(proposer_clip.model) == text_tower_digest(clip.model):
            proposer_clip = None
    return TwoStageSegmenter(
        proposer,
        clip,
        lam=settings.lam,
        lam_seen=lam_seen,
        lam_unseen=lam_unseen,
        expand_ratio=settings.expand_ratio,
        clip_batch_size=settings.clip_batch_size,
        **proposal_options(settings, proposer_clip),
    )


def one_pass_segmenter(
    proposer: MaskProposer | None,
    clip: ClipBundle,
    settings: EvalConfig,
    ensemble: str,
    adapter_folder: Path | None,
    device: torch.device,
) -> OnePassSegmenter:
    """The ``maskpool`` or ``adapter`` segmenter of :func:`build_segmenter` (the adapter's CLIP loaded with it)."""
    adapter, proposer_clip = None, None
    if adapter_folder is not None:
        adapter, clip, proposer_clip = load_adapter_and_clip(adapter_folder, clip, device)
    alpha, beta = (settings.alpha, settings.beta) if ensemble == "mask_adapter" else (1.0, 1.0)
    return OnePassSegmenter(
        proposer,
        clip,
        adapter=adapter,
        pooling=settings.pooling,
        attention_depth=settings.attention_depth,
        alpha=alpha,
        beta=beta,
        adapter_mask_threshold=settings.adapter_mask_threshold,
        image_batch_size=settings.batch_size,
        **proposal_options(settings, proposer_clip),
    )


def variant_settings(spec: Variant, settings: EvalConfig) -> EvalConfig:
    """``settings`` as ``spec`` runs them: a row that fixes its pooling (``maskpool_mean``) overrides
    ``evaluate.pooling``, so that its record names the pooling it ran."""
    return settings if spec.pooling is None else replace(settings, pooling=spec.pooling)


def build_variant_segmenter(
    spec: Variant, proposer: MaskProposer | None, artifacts: Path, settings: EvalConfig, device: torch.device
) -> ProposalSegmenter:
    """:func:`build_segmenter` for a named variant (``base``, ``ft_mpt``, ``adapter_ens``, ``maskpool`` ...)
    with its folders under ``artifacts`` and its :func:`variant_settings`."""
    clip, adapter = variant_folders(spec, artifacts)
    base = artifacts / "clip_base"
    return build_segmenter(
        spec.classifier,
        proposer,
        clip,
        adapter_folder=adapter,
        settings=variant_settings(spec, settings),
        ensemble=spec.ensemble,
        proposer_clip_folder=base if spec.clip_name != "base" and base.is_dir() else None,
        device=device,
    )
