"""Export a PyTorch classifier to a served bundle: ONNX variants, parity, manifest."""

from training.export.bundle import BundleSpec, write_bundle
from training.export.onnx import ExportSpec
from training.export.parity import ParityError

__all__ = ["BundleSpec", "ExportSpec", "ParityError", "write_bundle"]
