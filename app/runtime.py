"""One onnxruntime session per bundle: provider choice with CPU fallback, variant choice, IO
binding on GPU, and the warm-up run that proves the graph answers with one logit per label."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from app.batching import CPU_RUN_OVERHEAD_TOKENS, GPU_RUN_OVERHEAD_TOKENS
from app.bundle import Bundle
from app.errors import BundleError
from app.settings import Provider, Settings

log = logging.getLogger(__name__)

ORT_PROVIDERS: dict[Provider, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_GPU = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}


def preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from pip-installed `nvidia-*` packages when the system has none on its
    library path (onnxruntime-gpu >= 1.21 knows where those packages put them)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:  # a missing library only means CUDA falls back to CPU
        log.info("could not preload CUDA libraries: %s", exc)


def choose_providers(preferred: list[Provider], available: list[str]) -> list[str]:
    """The preferred providers this onnxruntime build has, in order, always ending with CPU."""
    chosen = [ORT_PROVIDERS[p] for p in preferred if ORT_PROVIDERS[p] in available]
    missing = [p for p in preferred if ORT_PROVIDERS[p] not in available]
    if missing:
        log.info("providers %s are not in this onnxruntime build; using %s", missing, chosen)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def choose_variant(bundle: Bundle, on_gpu: bool, settings: Settings) -> str:
    variants = bundle.manifest.variants
    if on_gpu and settings.use_fp16 and "fp16" in variants:
        return "fp16"
    if not on_gpu and settings.use_int8 and "int8" in variants:
        return "int8"
    return "fp32"


@dataclass(frozen=True)
class SessionInfo:
    provider: str
    variant: str
    io_binding: bool


class OrtModel:
    """Runs a bundle's graph. onnxruntime sessions are safe to call from several threads."""

    def __init__(self, bundle: Bundle, settings: Settings):
        self.bundle = bundle
        providers = choose_providers(settings.providers, ort.get_available_providers())
        if providers[0] in _GPU:
            preload_cuda_libraries()
        variant = choose_variant(bundle, providers[0] in _GPU, settings)
        self._session = self._open(bundle, variant, providers, settings)
        active = self._session.get_providers()[0]
        if active != providers[0]:
            log.warning(
                "bundle %s: %s unavailable, fell back to %s", bundle.name, providers[0], active
            )
            if active not in _GPU and variant == "fp16":
                variant = choose_variant(bundle, False, settings)
                self._session = self._open(bundle, variant, [active], settings)
        use_binding = settings.io_binding == "on" or (
            settings.io_binding == "auto" and active in _GPU
        )
        self.info = SessionInfo(provider=active, variant=variant, io_binding=use_binding)
        self._device = "cuda" if active in _GPU else "cpu"
        self._inputs = self._check_inputs()
        self._output = bundle.manifest.output
        log.info(
            "bundle %s: %s variant on %s (io binding %s)",
            bundle.name,
            variant,
            active,
            "on" if use_binding else "off",
        )

    @staticmethod
    def _open(
        bundle: Bundle, variant: str, providers: list[str], settings: Settings
    ) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        spin = "1" if settings.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        path = bundle.variant_path(variant)
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unrelated exception types
            raise BundleError(
                bundle.name, f"{path.name} cannot be loaded by onnxruntime: {exc}"
            ) from exc

    def default_workers(self) -> int:
        """One batch at a time on a GPU; on a CPU, one single-threaded batch per core."""
        return 1 if self._device == "cuda" else max(1, os.cpu_count() or 1)

    def run_overhead_tokens(self, settings: Settings) -> int:
        """What one more call costs in padded tokens (`RUN_OVERHEAD_TOKENS`), by default the
        device's (app/batching.py)."""
        if settings.run_overhead_tokens is not None:
            return settings.run_overhead_tokens
        return GPU_RUN_OVERHEAD_TOKENS if self._device == "cuda" else CPU_RUN_OVERHEAD_TOKENS

    def _check_inputs(self) -> tuple[str, ...]:
        graph_inputs = [i.name for i in self._session.get_inputs()]
        wanted = self.bundle.manifest.inputs
        for name in wanted:
            if name not in graph_inputs:
                raise BundleError(
                    self.bundle.name, f"input {name!r} is not an input of the graph {graph_inputs}"
                )
        extra = [n for n in graph_inputs if n not in wanted]
        if extra:
            raise BundleError(
                self.bundle.name, f"the graph needs inputs the manifest omits: {extra}"
            )
        outputs = [o.name for o in self._session.get_outputs()]
        if self.bundle.manifest.output not in outputs:
            raise BundleError(
                self.bundle.name, f"output {self.bundle.manifest.output!r} not in graph {outputs}"
            )
        return wanted

    def _feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        available = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        return {name: available[name] for name in self._inputs}

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits (float32, batch x labels, or batch x tokens x labels) for one padded batch."""
        feeds = self._feeds(input_ids, attention_mask)
        if not self.info.io_binding:
            logits = self._session.run([self._output], feeds)[0]
        else:
            binding = self._session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self._output, self._device)
            self._session.run_with_iobinding(binding)
            logits = binding.copy_outputs_to_cpu()[0]
        return np.asarray(logits, dtype=np.float32)

    def warm_up(self, dummy_ids: np.ndarray) -> None:
        """Run a dummy batch: compiles kernels now, and proves labels == logits width."""
        ids = np.stack([dummy_ids, dummy_ids])
        try:
            logits = self.infer(ids, np.ones_like(ids))
        except Exception as exc:
            raise BundleError(self.bundle.name, f"warm-up inference failed: {exc}") from exc
        labels = len(self.bundle.manifest.labels)
        if self.bundle.manifest.task == "token-classification":
            expected: tuple[int, ...] = (2, len(dummy_ids), labels)
            what = f"{labels} labels per token"
        else:
            expected, what = (2, labels), f"{labels} labels"
        if logits.shape != expected:
            raise BundleError(
                self.bundle.name,
                f"the manifest lists {what} but the model returns logits of shape "
                f"{tuple(logits.shape)} for a batch of 2 x {len(dummy_ids)} tokens",
            )
