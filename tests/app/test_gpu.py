"""The CUDA path: fp16 variant, IO binding, same answers as the CPU. Runs where onnxruntime
has the CUDA provider and a GPU answers; skipped elsewhere (CI has no GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.bundle import load_bundle
from app.runtime import OrtModel
from app.settings import Settings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="onnxruntime has no CUDA provider here",
    ),
]


def test_cuda_serves_fp16_with_io_binding_and_matches_cpu(built: dict[str, Path]) -> None:
    bundle = load_bundle(built["vi-sentiment"])
    gpu = OrtModel(bundle, Settings(providers=["cuda", "cpu"]))
    assert gpu.info.provider == "CUDAExecutionProvider"
    assert gpu.info.variant == "fp16"
    assert gpu.info.io_binding is True
    assert gpu.default_workers() == 1
    cpu = OrtModel(bundle, Settings(providers=["cpu"], use_int8=False))
    ids = np.random.default_rng(0).integers(5, 100, size=(8, 20))
    mask = np.ones_like(ids)
    mask[3, 10:] = 0
    np.testing.assert_allclose(gpu.infer(ids, mask), cpu.infer(ids, mask), atol=5e-2)
