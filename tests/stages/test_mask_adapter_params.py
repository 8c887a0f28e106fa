"""The ``mask_adapter`` section of the repository's params.yaml builds the paper's adapter (issue 28, item 4)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from model.mask_adapter import MaskAdapter
from stages.mask_adapter import split_params

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def section(name: str) -> dict:
    return yaml.safe_load(PARAMS.read_text(encoding="utf-8"))[name]


def test_the_default_adapter_has_no_mask_prior():
    architecture, _ = split_params(section("mask_adapter"), clip_dim=128)
    assert architecture.mask_prior == 0.0
    adapter = MaskAdapter(architecture).eval()
    with torch.no_grad():
        adapter.mask_branch[-1].weight.zero_()
        adapter.mask_branch[-1].bias.zero_()
        projected = torch.randn(1, 128, 8, 8)
        inside, outside = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
        inside[..., :16, :] = 1.0
        outside[..., 16:, :] = 1.0
        # without the mask branch's say, the maps do not depend on the mask: no prior adds ±γ
        assert torch.equal(adapter.maps(projected, inside), adapter.maps(projected, outside))
