"""The evaluation variants: which CLIP classifies, and which diagnostic replaces a stage.

Variant names are what ``python -m stages.evaluate --variant`` takes and what
``metrics/eval/<variant>/`` is called:

* ``base``, ``mpt``, ``ft``, ``ft_mpt``, ``ft_gt``, ``prompts``, ``ft_prompts``, ``longer`` — the
  two-stage segmenter (proposals, CLIP on masked crops, OVSeg's ensemble) with the CLIP folder
  ``artifacts/clip_<variant>`` (mask prompts and learned text prompts used when the folder has them);
* ``zsseg`` — zsseg.baseline: proposals, the base CLIP with learned text prompts
  (``artifacts/clip_prompts``), zsseg's seen/unseen ensemble;
* ``oracle`` — the proposals labelled by the ground truth (each takes the class it
  overlaps most): how good the *masks* are with a perfect classifier;
* ``maskpool``, ``maskpool_mean``, ``adapter``, ``adapter_ens``, ``ft_adapter_ens`` — Mask-Adapter's
  family: one CLIP pass per image, proposals pooled from it (plainly or by the Mask-Adapter of
  ``artifacts/adapter_<clip>``); ``maskpool`` pools as ``evaluate.pooling`` says, ``maskpool_mean``
  always by the weighted mean of the mask's cells: the paper's baseline pooling;
* ``gt_masks_<clip>`` (``gt_masks_base``, ``gt_masks_ft_mpt``, ...) — the
  ground-truth segments classified by that CLIP's crops: how good the *classifier* is
  with perfect masks; ``gt_masks_maskpool``, ``gt_masks_maskpool_mean``, ``gt_masks_adapter`` and
  ``gt_masks_ft_adapter`` do the same for the one-pass classifiers.

This module is pure Python (no torch), so the report can order its rows cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The CLIP folders a variant can name, in the order of the paper's ablation.
CLIPS: dict[str, str] = {
    "base": "base CLIP, not adapted to masked crops",
    "mpt": "base CLIP + mask prompt tuning on the mined mask–noun pairs",
    "ft": "CLIP finetuned on the mined mask–noun pairs",
    "ft_mpt": "finetuned CLIP + mask prompt tuning",
    "ft_gt": "CLIP finetuned on the seen classes' ground-truth masks (fixed vocabulary)",
    "prompts": "base CLIP with text prompts learned on the seen classes' ground truth",
    "ft_prompts": "finetuned CLIP with text prompts learned on the seen classes' ground truth",
    "longer": "base CLIP pretrained on for as many steps as finetuning (whole images and captions: the control)",
}
#: Crop-path variants with zsseg.baseline's ensemble (seen p_prop^λ·p_clip^(1−λ), unseen p_prop^(1−λ)·p_clip^λ):
#: name -> (CLIP, description).
ZSSEG: dict[str, tuple[str, str]] = {
    "zsseg": (
        "prompts",
        "zsseg.baseline: proposals + base CLIP with learned text prompts, its seen/unseen ensemble (the stage runs"
        " each benchmark under zsseg's protocol for it: pipeline/evaluation/zsseg.py)",
    ),
}
#: How each classifier's class probabilities may meet the proposer's, its default first: OVSeg's geometric
#: ensemble (``evaluate.lam``, ``lam_seen``/``lam_unseen``) or zsseg.baseline's (``evaluate.zsseg_lam``) for
#: crops; Mask-Adapter's (``evaluate.alpha``/``beta``) or ``none`` (CLIP's classes alone, the proposer's
#: objectness kept) for the one-pass classifiers.
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "crops": ("ovseg", "zsseg"),
    "maskpool": ("mask_adapter", "none"),
    "adapter": ("mask_adapter", "none"),
}
#: Mask-Adapter's family (one CLIP pass per image): name -> (CLIP, adapter or None, ensemble, description).
ONE_PASS: dict[str, tuple[str, str | None, str, str]] = {
    "maskpool": (
        "base",
        None,
        "mask_adapter",
        "proposals pooled from one base-CLIP pass per image, Mask-Adapter's ensemble",
    ),
    "maskpool_mean": (
        "base",
        None,
        "mask_adapter",
        "proposals pooled from one base-CLIP pass per image by the weighted mean of the mask's cells (the paper's"
        " baseline pooling), Mask-Adapter's ensemble",
    ),
    "adapter": ("base", "base", "none", "proposals classified by the Mask-Adapter on the base CLIP alone"),
    "adapter_ens": ("base", "base", "mask_adapter", "the Mask-Adapter on the base CLIP, ensembled with the proposer"),
    "ft_adapter_ens": (
        "ft",
        "ft",
        "mask_adapter",
        "the Mask-Adapter on the finetuned CLIP, ensembled with the proposer",
    ),
}
#: Ground-truth-mask rows of the one-pass classifiers: name -> (CLIP, adapter or None).
ONE_PASS_GT: dict[str, tuple[str, str | None]] = {
    "maskpool": ("base", None),
    "maskpool_mean": ("base", None),
    "adapter": ("base", "base"),
    "ft_adapter": ("ft", "ft"),
}
#: One-pass rows that fix the pooling instead of reading ``evaluate.pooling``: key of :data:`ONE_PASS` /
#: :data:`ONE_PASS_GT` -> pooling. ``mean`` is the paper's baseline (its CLIP is a ConvNeXt, whose dense map pools
#: by a weighted mean); the demo's ViT pools better with ``attention``, which ``maskpool`` keeps.
FIXED_POOLING: dict[str, str] = {"maskpool_mean": "mean"}
MODES = ("two_stage", "oracle", "gt_masks")
CLASSIFIERS = tuple(ENSEMBLES)
ORACLE = "oracle"
GT_MASKS_PREFIX = "gt_masks_"


@dataclass(frozen=True)
class Variant:
    """One row of the results: ``mode`` says what runs, ``clip_name`` which CLIP folder it uses
    (``artifacts/clip_<clip_name>``).

    ``classifier`` says how proposals are classified: ``crops`` (a CLIP pass per masked
    crop, OVSeg's ensemble), ``maskpool`` or ``adapter`` (one CLIP pass per image; the
    adapter folder ``artifacts/adapter_<adapter>``). ``ensemble``: how the classifier's class
    probabilities meet the proposer's, one of the classifier's :data:`ENSEMBLES`. ``pooling``: the pooling a
    ``maskpool`` row fixes (:data:`FIXED_POOLING`; ``None``: ``evaluate.pooling``). The oracle
    uses the CLIP only for the proposer's text embeddings (the proposer was trained
    against the base CLIP's text tower).
    """

    name: str
    mode: str
    clip_name: str
    description: str
    classifier: str = "crops"
    adapter: str | None = None
    ensemble: str = "ovseg"
    pooling: str | None = None

    def __post_init__(self) -> None:
        if self.ensemble not in ENSEMBLES.get(self.classifier, ()):
            raise ValueError(
                f"variant {self.name!r}: ensemble {self.ensemble!r}; the {self.classifier} classifier "
                f"takes {', '.join(ENSEMBLES[self.classifier])}"
            )

    @property
    def needs_proposer(self) -> bool:
        return self.mode != "gt_masks"

    @property
    def is_diagnostic(self) -> bool:
        return self.mode != "two_stage"


def variant(name: str) -> Variant:
    """The :class:`Variant` called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name in CLIPS:
        return Variant(name, "two_stage", name, f"proposals + {CLIPS[name]}")
    if name in ZSSEG:
        clip_name, description = ZSSEG[name]
        return Variant(name, "two_stage", clip_name, description, ensemble="zsseg")
    if name in ONE_PASS:
        clip_name, adapter, ensemble, description = ONE_PASS[name]
        classifier = "adapter" if adapter else "maskpool"
        return Variant(
            name, "two_stage", clip_name, description, classifier, adapter, ensemble, FIXED_POOLING.get(name)
        )
    if name == ORACLE:
        return Variant(name, "oracle", "base", "proposals labelled by the ground truth (a perfect classifier)")
    rest = name[len(GT_MASKS_PREFIX) :] if name.startswith(GT_MASKS_PREFIX) else None
    if rest in CLIPS:
        return Variant(name, "gt_masks", rest, f"ground-truth masks classified by the {rest} CLIP (crops)")
    if rest in ONE_PASS_GT:
        clip_name, adapter = ONE_PASS_GT[rest]
        how = f"the Mask-Adapter on the {clip_name} CLIP" if adapter else f"pooling one {clip_name}-CLIP pass per image"
        if rest in FIXED_POOLING:
            how += f" ({FIXED_POOLING[rest]} pooling)"
        return Variant(
            name,
            "gt_masks",
            clip_name,
            f"ground-truth masks classified by {how}",
            "adapter" if adapter else "maskpool",
            adapter,
            "mask_adapter",
            FIXED_POOLING.get(rest),
        )
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(variant_names())}")


def variant_names() -> list[str]:
    """Every valid name in report order: the two-stage variants (crops, then one pass), the oracle, the
    ground-truth-mask rows."""
    return [*CLIPS, *ZSSEG, *ONE_PASS, ORACLE, *(GT_MASKS_PREFIX + name for name in [*CLIPS, *ONE_PASS_GT])]
