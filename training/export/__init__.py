"""Export a PyTorch classifier to a served bundle: ONNX variants (`onnx`, `variants`), parity
(`parity`), manifest (`bundle`). Nothing is imported here, so `build --if-changed` can check a
bundle without loading torch."""
