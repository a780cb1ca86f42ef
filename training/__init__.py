"""smallglot offline half: importers, distillation, compression, export to bundles, evaluation."""
