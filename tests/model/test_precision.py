"""Precision settings: one vocabulary, the autocast of a run and the float32 scoring inside it."""

from __future__ import annotations

from typing import get_args

import pytest
import torch

from model.precision import (
    INFERENCE_PRECISIONS,
    PRECISION_SETTINGS,
    PRECISIONS,
    Precision,
    check_inference_precision,
    check_precision,
    full_precision,
    inference_autocast,
    native_bf16,
    resolve_inference_precision,
    training_autocast_dtype,
)
from model.scoring import clip_class_probs, predict_labels, semantic_map

# Low-precision runs: bf16 asked for explicitly, or auto resolved on a bf16 CPU.
pytestmark = pytest.mark.usefixtures("native_numerics")

CPU = torch.device("cpu")


def test_fp32_is_no_autocast_and_bf16_is_bf16_autocast():
    with inference_autocast("fp32", CPU):
        assert not torch.is_autocast_enabled("cpu")
    with inference_autocast("bf16", CPU):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.nn.Linear(4, 3)(torch.randn(2, 4)).dtype == torch.bfloat16


def test_one_vocabulary_of_which_each_use_takes_a_part():
    assert PRECISIONS == get_args(Precision) == ("auto", "fp32", "bf16", "fp16")
    assert set(INFERENCE_PRECISIONS) < set(PRECISION_SETTINGS) < set(PRECISIONS)
    assert check_precision("fp16", "train.precision") == "fp16"
    with pytest.raises(ValueError, match=r"^train.precision must be one of auto, fp32, bf16, fp16, got 'fp8'$"):
        check_precision("fp8", "train.precision")
    with pytest.raises(ValueError, match=r"^precision must be one of fp32, bf16, got 'auto'$"):
        check_precision("auto", "precision", INFERENCE_PRECISIONS)
    with pytest.raises(ValueError, match="must be one of fp8"):  # a support outside the vocabulary is no escape
        check_precision("fp8", "precision", ("fp8",))


def test_training_autocast_dtype():
    assert training_autocast_dtype("fp32", CPU) is None
    assert training_autocast_dtype("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="CUDA"):
        training_autocast_dtype("fp16", CPU)
    assert training_autocast_dtype("auto", CPU) in (None, torch.bfloat16)


def test_precision_is_checked_by_name():
    assert check_inference_precision("bf16", "evaluate.precision") == "bf16"
    assert check_inference_precision("auto", "evaluate.precision") == "auto"
    for bad in ("fp16", "BF16", None, 16):
        with pytest.raises(ValueError, match=r"evaluate.precision must be one of fp32, bf16, auto, got"):
            check_inference_precision(bad, "evaluate.precision")
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_autocast("fp16", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_where_the_cpu_has_it_natively(monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert native_bf16(CPU) is native
    assert resolve_inference_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_inference_precision("auto", "cpu") == ("bf16" if native else "fp32")
    for fixed in ("fp32", "bf16"):  # a fixed precision is kept on every machine
        assert resolve_inference_precision(fixed, CPU) == fixed
    with inference_autocast("auto", CPU):
        assert torch.is_autocast_enabled("cpu") is native
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_inference_precision("fp16", CPU)


def test_native_bf16_probes_this_machine():
    probes = (torch.cpu._is_avx512_bf16_supported(), torch.cpu._is_amx_tile_supported())
    assert native_bf16(CPU) is any(probes)
    assert native_bf16("meta") is False


def test_full_precision_turns_autocast_off_inside_only():
    # 257 pixels: a count that bf16 (8 bits of mantissa) cannot hold.
    a = torch.ones(2, 257)
    product = full_precision(torch.matmul)
    with inference_autocast("bf16", CPU):
        assert torch.matmul(a, a.T).dtype == torch.bfloat16
        exact = product(a, a.T)
        assert torch.is_autocast_enabled("cpu")  # restored after the call
    assert exact.dtype == torch.float32 and exact[0, 0].item() == 257.0
    assert torch.equal(product(a, a.T), a @ a.T)  # a no-op outside autocast


def test_scoring_is_the_same_float32_under_autocast():
    generator = torch.Generator().manual_seed(0)
    image_emb, text_emb = torch.randn(6, 32, generator=generator), torch.randn(5, 32, generator=generator)
    class_probs, mask_probs = torch.rand(6, 5, generator=generator), torch.rand(6, 9, 11, generator=generator)
    plain = (
        clip_class_probs(image_emb, text_emb),
        semantic_map(class_probs, mask_probs),
        predict_labels(class_probs, mask_probs),
    )
    with inference_autocast("bf16", CPU):
        cast = (
            clip_class_probs(image_emb, text_emb),
            semantic_map(class_probs, mask_probs),
            predict_labels(class_probs, mask_probs),
        )
    for expected, got in zip(plain, cast):
        assert got.dtype == expected.dtype and torch.equal(got, expected)
