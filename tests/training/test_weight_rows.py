"""Per-row int8 storage of committed weights (training/weights/rows.py)."""

from __future__ import annotations

import pytest
import torch

from training.weights.rows import SCALE, compact, expand, fp16


def state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "embeddings.weight": torch.randn(300, 64, generator=generator),
        "dense.weight": torch.randn(64, 64, generator=generator) * 0.02,
        "dense.bias": torch.randn(64, generator=generator),
        "norm.weight": torch.ones(64),
        "small.weight": torch.randn(7, 64, generator=generator),  # a classifier: stays fp16
        "position_ids": torch.arange(16).unsqueeze(0),
    }


def test_large_matrices_are_int8_rows_and_the_rest_fp16() -> None:
    stored = compact(state())
    assert stored["embeddings.weight"].dtype == torch.int8
    assert stored["embeddings.weight" + SCALE].shape == (300, 1)
    assert stored["dense.weight"].dtype == torch.int8
    assert stored["dense.bias"].dtype == torch.float16
    assert stored["small.weight"].dtype == torch.float16
    assert stored["position_ids"].dtype == torch.int64
    size = sum(t.numel() * t.element_size() for t in stored.values())
    fp16 = sum(t.numel() * 2 for t in state().values())
    assert size < 0.6 * fp16


def test_fp16_sources_halve_floats_and_keep_integer_buffers() -> None:
    stored = fp16(state())
    assert {k: v.dtype for k, v in stored.items()} == {
        k: torch.int64 if k == "position_ids" else torch.float16 for k in state()
    }
    assert torch.equal(stored["position_ids"], state()["position_ids"])
    assert torch.equal(stored["dense.bias"], state()["dense.bias"].half())
    # what compact leaves unquantized is stored exactly as fp16 stores it
    kept = compact(state())
    assert all(torch.equal(kept[k], stored[k]) for k in ("dense.bias", "small.weight"))


def test_expand_restores_every_weight_within_half_a_step_of_its_row() -> None:
    original, restored = state(), expand(compact(state()))
    assert set(restored) == set(original)
    for name, value in original.items():
        got = restored[name]
        assert got.shape == value.shape
        if name in ("embeddings.weight", "dense.weight"):
            step = value.abs().amax(1, keepdim=True) / 127
            assert bool(((got - value).abs() <= step / 2 + 1e-3 * step).all()), name
        elif value.is_floating_point():
            assert torch.allclose(got, value.half().float()), name
        else:
            assert torch.equal(got, value), name


def test_a_zero_row_survives() -> None:
    weights = {"w.weight": torch.zeros(64, 128)}
    assert torch.equal(expand(compact(weights))["w.weight"], weights["w.weight"])


def test_broken_storage_is_refused_naming_the_weight() -> None:
    stored = compact(state())
    missing = {k: v for k, v in stored.items() if k != "dense.weight" + SCALE}
    with pytest.raises(ValueError, match=r"dense\.weight is int8 but its scales"):
        expand(missing)
    orphan = {k: v for k, v in stored.items() if k != "dense.weight"}
    with pytest.raises(ValueError, match="scales without their matrix"):
        expand(orphan)
    with pytest.raises(ValueError, match="may not end in"):
        compact({"x" + SCALE: torch.zeros(2)})
