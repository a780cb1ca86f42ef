"""Per-dataset evaluation of a model directory or a served bundle."""
