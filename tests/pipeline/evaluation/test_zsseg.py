"""zsseg.baseline's two protocols: which benchmark runs which, with what values, and the checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.params import load_params
from model.proposer.inference import Proposals
from pipeline.evaluation.miou import EvalConfig
from pipeline.evaluation.zsseg import CROSS_DATASET, ZERO_SHOT, Protocols

REPO = Path(__file__).resolve().parents[3]
SECTION = {
    "zero_shot": {"benchmarks": ["demo"], "lam": 0.8, "mask_threshold": 0.5},
    "cross_dataset": {"ade847": {"lam": 0.7, "mask_threshold": 0.3}, "default": {"lam": 0.6, "mask_threshold": 0.45}},
}


def test_each_benchmark_gets_its_protocol_and_the_settings_follow():
    protocols = Protocols.from_params(SECTION)
    demo, ade, voc = (protocols.protocol(name) for name in ("demo", "ade847", "voc20"))
    assert (demo.kind, demo.lam, demo.mask_threshold, demo.source) == (ZERO_SHOT, 0.8, 0.5, "zero_shot")
    assert (ade.kind, ade.lam, ade.mask_threshold, ade.source) == (CROSS_DATASET, 0.7, 0.3, "cross_dataset.ade847")
    assert (voc.lam, voc.mask_threshold, voc.source) == (0.6, 0.45, "cross_dataset.default")
    zero, cross = demo.variant(), ade.variant()
    assert (zero.clip_name, zero.ensemble, cross.clip_name, cross.ensemble) == ("prompts", "zsseg", "base", "ovseg")
    base = EvalConfig(lam=0.2, lam_seen=0.1, zsseg_lam=0.3, mask_threshold=0.4)
    assert (demo.settings(base).zsseg_lam, demo.settings(base).mask_threshold, demo.settings(base).lam) == (
        0.8,
        0.5,
        0.2,
    )
    crossed = ade.settings(base)
    assert (crossed.lam, crossed.lam_seen, crossed.lam_unseen, crossed.mask_threshold) == (0.7, None, None, 0.3)
    assert ade.record() == {
        "protocol": CROSS_DATASET,
        "lam": 0.7,
        "mask_threshold": 0.3,
        "from": "cross_dataset.ade847",
    }


def test_stored_proposals_are_rebinarised_at_the_protocols_threshold():
    probs = torch.tensor([[[[0.2, 0.35], [0.45, 0.9]]]])
    stored = Proposals(probs, torch.ones(1, 1, 2), torch.ones(1, 1), masks=probs > 0.4)
    at = Protocols.from_params(SECTION).protocol("ade847").proposals(stored)
    assert at.masks is not None and at.masks.tolist() == [[[[False, True], [True, True]]]]
    assert at.mask_probs is stored.mask_probs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("cross_dataset"), "a 'default' entry"),
        (lambda s: s["cross_dataset"].pop("default"), "a 'default' entry"),
        (lambda s: s["cross_dataset"].update(demo={"lam": 0.5, "mask_threshold": 0.5}), "under both"),
        (lambda s: s["cross_dataset"]["ade847"].update(lam=1.5), r"ade847.lam must lie in \[0, 1\]"),
        (lambda s: s["cross_dataset"]["ade847"].update(mask_threshold=1.0), "mask_threshold must lie in"),
        (lambda s: s["cross_dataset"]["ade847"].pop("lam"), r"missing \['lam'\]"),
        (lambda s: s["zero_shot"].update(temperature=100), "unknown keys"),
        (lambda s: s.update(extra=1), "unknown keys"),
    ],
)
def test_a_bad_section_is_refused_naming_the_key(change, message):
    section = {
        "zero_shot": dict(SECTION["zero_shot"]),
        "cross_dataset": {k: dict(v) for k, v in SECTION["cross_dataset"].items()},
    }
    change(section)
    with pytest.raises(ValueError, match=message):
        Protocols.from_params(section)


def test_the_params_follow_the_reference_configs():
    """The values taken from zsseg.baseline's configs (docs/deviations.md) are not tuned here."""
    protocols = Protocols.from_params(load_params("evaluate", REPO / "params.yaml")["zsseg"])
    expected = {"ade847": (0.7, 0.3), "ade150": (0.5, 0.4), "pc59": (0.4, 0.5)}
    assert {b: (protocols.protocol(b).lam, protocols.protocol(b).mask_threshold) for b in expected} == expected
    assert protocols.protocol("demo").kind == ZERO_SHOT and protocols.zero_shot_values == (0.8, 0.5)
