"""Sequence-classification fine-tuning (English teachers, multilingual baselines)."""
