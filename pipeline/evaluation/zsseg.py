"""zsseg.baseline's two protocols: how its row is evaluated on each benchmark (params ``evaluate.zsseg``).

zsseg.baseline (MendelXu/zsseg.baseline) runs a benchmark one of two ways:

* **zero-shot**, on a dataset that registers which classes were trained (its ``trainable_flag``:
  COCO-Stuff 156/15, VOC 15/5; here the demo world's ``demo`` benchmark with its seen/unseen split):
  learned text prompts, and the per-group exponent rule: seen classes ``p_prop^λ · p_clip^(1−λ)``,
  unseen ones ``p_prop^(1−λ) · p_clip^λ`` (``configs/coco-stuff-164k-156/zero_shot_maskformer_R50_bs32_60k.yaml``:
  λ 0.8, mask threshold 0.5);
* **cross-dataset**, everywhere else: the VILD templates (no learned prompts), CLIP's exponent λ on every
  class, and a λ and mask threshold per dataset (``configs/<dataset>/cross_dataset_test_only.yaml``).
  A benchmark without a reference config takes the ``default`` entry, chosen on the validation split
  (the ``tune`` stage, docs/tuning.md).

The mask threshold only binarises the proposals that CLIP classifies; the semantic map keeps the
soft masks. Stored proposals are rebinarised at it (:meth:`Protocol.proposals`), which is exactly what
the proposer gives at that threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.params import check_fractions, check_keys
from model.proposer.inference import Proposals
from pipeline.evaluation.miou import EvalConfig
from pipeline.evaluation.variants import Variant

ZERO_SHOT, CROSS_DATASET = "zero-shot", "cross-dataset"
#: The cross-dataset entry of a benchmark that has no reference config.
DEFAULT = "default"
#: The CLIP folder each protocol classifies with: learned prompts (``artifacts/clip_prompts``) or the
#: base CLIP with its templates (VILD, params ``clip.templates``).
CLIPS = {ZERO_SHOT: "prompts", CROSS_DATASET: "base"}


@dataclass(frozen=True)
class Protocol:
    """How the ``zsseg`` row runs on one benchmark: ``kind`` (:data:`ZERO_SHOT` or :data:`CROSS_DATASET`),
    its λ and mask threshold, and ``source``: the params entry they come from."""

    benchmark: str
    kind: str
    lam: float
    mask_threshold: float
    source: str

    def variant(self, name: str = "zsseg") -> Variant:
        if self.kind == ZERO_SHOT:
            description = "zsseg.baseline zero-shot: learned text prompts, its seen/unseen exponent rule"
            return Variant(name, "two_stage", CLIPS[ZERO_SHOT], description, ensemble="zsseg")
        description = "zsseg.baseline cross-dataset: VILD templates on the base CLIP, one exponent per dataset"
        return Variant(name, "two_stage", CLIPS[CROSS_DATASET], description)

    def settings(self, settings: EvalConfig) -> EvalConfig:
        """``settings`` with this protocol's λ and mask threshold."""
        if self.kind == ZERO_SHOT:
            return replace(settings, zsseg_lam=self.lam, mask_threshold=self.mask_threshold)
        return replace(settings, lam=self.lam, lam_seen=None, lam_unseen=None, mask_threshold=self.mask_threshold)

    def proposals(self, proposals: Proposals) -> Proposals:
        """Stored proposer outputs binarised at this protocol's mask threshold."""
        return replace(proposals, masks=proposals.mask_probs > self.mask_threshold)

    def record(self) -> dict[str, Any]:
        """What the metrics record says of the protocol."""
        return {"protocol": self.kind, "lam": self.lam, "mask_threshold": self.mask_threshold, "from": self.source}


def _entry(values: Any, where: str) -> tuple[float, float]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: expected {{lam, mask_threshold}}, got {values!r}")
    check_keys(values, {"lam", "mask_threshold"}, where)
    missing = sorted({"lam", "mask_threshold"} - set(values))
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    lam, threshold = float(values["lam"]), float(values["mask_threshold"])
    check_fractions([("lam", lam)], f"{where}.")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"{where}.mask_threshold must lie in [0, 1), got {threshold}")
    return lam, threshold


@dataclass(frozen=True)
class Protocols:
    """The params section ``evaluate.zsseg``, checked: which benchmarks are zero-shot, and each
    protocol's values."""

    zero_shot: tuple[str, ...]
    zero_shot_values: tuple[float, float]
    cross_dataset: Mapping[str, tuple[float, float]]

    @classmethod
    def from_params(cls, section: Any, where: str = "evaluate.zsseg") -> Protocols:
        if not isinstance(section, Mapping):
            raise ValueError(f"{where}: expected a section with zero_shot and cross_dataset, got {section!r}")
        check_keys(section, {"zero_shot", "cross_dataset"}, where)
        zero = dict(section.get("zero_shot") or {})
        check_keys(zero, {"benchmarks", "lam", "mask_threshold"}, f"{where}.zero_shot")
        benchmarks = zero.pop("benchmarks", [])
        if not isinstance(benchmarks, list) or not all(isinstance(b, str) for b in benchmarks):
            raise ValueError(f"{where}.zero_shot.benchmarks: expected a list of names, got {benchmarks!r}")
        cross = section.get("cross_dataset") or {}
        if not isinstance(cross, Mapping) or DEFAULT not in cross:
            raise ValueError(f"{where}.cross_dataset: expected benchmark entries and a {DEFAULT!r} entry")
        both = sorted(set(benchmarks) & set(cross))
        if both:
            raise ValueError(f"{where}: {both} listed under both zero_shot and cross_dataset")
        return cls(
            tuple(benchmarks),
            _entry(zero, f"{where}.zero_shot"),
            {name: _entry(values, f"{where}.cross_dataset.{name}") for name, values in cross.items()},
        )

    def protocol(self, benchmark: str) -> Protocol:
        """The protocol of ``benchmark``."""
        if benchmark in self.zero_shot:
            lam, threshold = self.zero_shot_values
            return Protocol(benchmark, ZERO_SHOT, lam, threshold, "zero_shot")
        source = benchmark if benchmark in self.cross_dataset else DEFAULT
        lam, threshold = self.cross_dataset[source]
        return Protocol(benchmark, CROSS_DATASET, lam, threshold, f"cross_dataset.{source}")
