"""The one temperature rule (model.scoring.CLIP_LOGIT_SCALE): both families classify at 100, whatever
scale the CLIP learned, and no classifier or class-name loss reads the CLIP's learned scale."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import model.one_pass
import model.two_stage
from model.one_pass import OnePassSegmenter
from model.scoring import CLIP_LOGIT_SCALE
from model.two_stage import TwoStageSegmenter

REPO = Path(__file__).resolve().parents[2]
#: The only modules that may read a CLIP's learned ``logit_scale``: CLIP's own image-caption training,
#: and mining's pair filter (its ``min_softmax`` is a threshold at the CLIP's scale, not a classifier).
LEARNED_SCALE_READERS = {
    "pipeline/training/clip_pretrain.py",
    "pipeline/mining/models.py",
    "pipeline/mining/miner.py",
}


def test_both_families_classify_at_the_one_temperature(proposer, tiny_clip, monkeypatch):
    with torch.no_grad():
        tiny_clip.model.logit_scale.fill_(math.log(14.3))  # what the demo CLIP learns
    scales = {}
    for module, family in ((model.two_stage, "crops"), (model.one_pass, "one pass")):
        real = module.clip_class_probs

        def spy(*args, _real=real, _family=family, **kwargs):
            scales[_family] = float(args[2])
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "clip_class_probs", spy)
    image = torch.from_numpy(np.random.default_rng(0).random((3, 32, 32), dtype=np.float32))
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, 4:20, 4:20] = masks[1, 10:30, 12:28] = True
    text = torch.nn.functional.normalize(torch.randn(3, tiny_clip.embed_dim), dim=-1)
    TwoStageSegmenter(proposer, tiny_clip).clip_probs([image], [masks], text)
    OnePassSegmenter(proposer, tiny_clip).clip_probs([image], [masks], text)
    assert scales == {"crops": CLIP_LOGIT_SCALE, "one pass": CLIP_LOGIT_SCALE} == {"crops": 100.0, "one pass": 100.0}


def _reads_learned_scale(path: Path) -> list[int]:
    """Lines of ``path`` that read ``<something>.logit_scale`` other than a segmenter's own ``self.logit_scale``."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "logit_scale"
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]


@pytest.mark.parametrize("package", ["model", "pipeline", "stages"])
def test_no_classifier_or_class_name_loss_reads_the_learned_scale(package):
    offenders = {
        str(path.relative_to(REPO)): lines
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in LEARNED_SCALE_READERS and (lines := _reads_learned_scale(path))
    }
    assert offenders == {}, f"use model.scoring.CLIP_LOGIT_SCALE (the one temperature rule): {offenders}"
