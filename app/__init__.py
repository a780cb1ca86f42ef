"""smallglot serving half: model bundles behind a dynamic batcher and an HTTP API."""
