"""The evaluation variants: which CLIP classifies, and which diagnostic replaces a stage.

Variant names are what ``python -m stages.evaluate --variant`` takes and what
``metrics/eval/<variant>/`` is called:

* ``base``, ``mpt``, ``ft``, ``ft_mpt``, ``ft_gt`` — the two-stage segmenter
  (proposals, CLIP on masked crops, ensemble) with the CLIP folder
  ``artifacts/clip_<variant>`` (mask prompts used when the folder has them);
* ``oracle`` — the proposals labelled by the ground truth (each takes the class it
  overlaps most): how good the *masks* are with a perfect classifier;
* ``gt_masks_<clip>`` (``gt_masks_base``, ``gt_masks_ft_mpt``, ...) — the
  ground-truth segments classified by that CLIP: how good the *classifier* is
  with perfect masks.

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
}
MODES = ("two_stage", "oracle", "gt_masks")
ORACLE = "oracle"
GT_MASKS_PREFIX = "gt_masks_"


@dataclass(frozen=True)
class Variant:
    """One row of the results: ``mode`` says what runs, ``clip`` which CLIP folder it uses.

    The oracle uses the CLIP only for the proposer's text embeddings (the
    proposer was trained against the base CLIP's text tower).
    """

    name: str
    mode: str
    clip: str
    description: str

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
    if name == ORACLE:
        return Variant(name, "oracle", "base", "proposals labelled by the ground truth (a perfect classifier)")
    if name.startswith(GT_MASKS_PREFIX) and name[len(GT_MASKS_PREFIX):] in CLIPS:
        clip = name[len(GT_MASKS_PREFIX):]
        return Variant(name, "gt_masks", clip, f"ground-truth masks classified by the {clip} CLIP")
    raise ValueError(f"unknown variant {name!r}; choose from {', '.join(variant_names())}")


def variant_names() -> list[str]:
    """Every valid name in report order: the two-stage variants, the oracle, the ground-truth-mask rows."""
    return [*CLIPS, ORACLE, *(GT_MASKS_PREFIX + clip for clip in CLIPS)]
