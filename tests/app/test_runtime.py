"""The onnxruntime layer on a tiny real bundle: providers, variants, IO binding, warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.bundle import load_bundle
from app.runtime import OrtModel, choose_providers, choose_variant
from app.settings import Settings


def test_choose_providers_keeps_order_and_falls_back_to_cpu() -> None:
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["tensorrt", "cuda", "cpu"], available) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["cuda"], ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["cpu"], available) == ["CPUExecutionProvider"]


def test_choose_variant(built: dict[str, Path]) -> None:
    full = load_bundle(built["vi-sentiment"])
    plain = load_bundle(built["sw-topic"])
    settings = Settings()
    assert choose_variant(full, on_gpu=True, settings=settings) == "fp16"
    assert choose_variant(full, on_gpu=False, settings=settings) == "int8"
    assert choose_variant(full, on_gpu=False, settings=Settings(use_int8=False)) == "fp32"
    assert choose_variant(full, on_gpu=True, settings=Settings(use_fp16=False)) == "fp32"
    assert choose_variant(plain, on_gpu=True, settings=settings) == "fp32"
    assert choose_variant(plain, on_gpu=False, settings=settings) == "fp32"


def test_cuda_preference_falls_back_to_cpu_here(built: dict[str, Path]) -> None:
    model = OrtModel(load_bundle(built["vi-sentiment"]), Settings(providers=["cuda", "cpu"]))
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA: the fallback cannot be observed")
    assert model.info.provider == "CPUExecutionProvider"
    assert model.info.variant == "int8"
    assert model.info.io_binding is False


def test_io_binding_gives_the_same_logits(built: dict[str, Path]) -> None:
    bundle = load_bundle(built["vi-sentiment"])
    plain = OrtModel(bundle, Settings(io_binding="off", use_int8=False, providers=["cpu"]))
    bound = OrtModel(bundle, Settings(io_binding="on", use_int8=False, providers=["cpu"]))
    assert bound.info.io_binding is True
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 100, size=(3, 7))
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    np.testing.assert_allclose(plain.infer(ids, mask), bound.infer(ids, mask), atol=1e-6)
    assert plain.infer(ids, mask).shape == (3, 3)


def test_variants_agree_with_fp32(built: dict[str, Path]) -> None:
    bundle = load_bundle(built["vi-sentiment"])
    fp32 = OrtModel(bundle, Settings(use_int8=False, providers=["cpu"]))
    int8 = OrtModel(bundle, Settings(use_int8=True, providers=["cpu"]))
    ids = np.random.default_rng(1).integers(5, 100, size=(4, 12))
    mask = np.ones_like(ids)
    np.testing.assert_allclose(fp32.infer(ids, mask), int8.infer(ids, mask), atol=0.05)


def test_threads_come_from_settings(built: dict[str, Path]) -> None:
    model = OrtModel(load_bundle(built["sw-topic"]), Settings(intra_op_threads=1))
    options = model._session.get_session_options()
    assert options.intra_op_num_threads == 1
