from __future__ import annotations

import pytest
import torch

from pipeline.training.precision import resolve_precision

CPU = torch.device("cpu")


def test_precision_resolution() -> None:
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", CPU)
    assert resolve_precision("auto", CPU) in (None, torch.bfloat16)
