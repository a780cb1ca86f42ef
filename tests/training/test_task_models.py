"""The committed task heads (sentiment, POS, NER on a language's served student): each,
rebuilt from `models/sources/<lang>-<task>` and its body's sources (as `make serve` rebuilds
it), must reproduce its reference predictions and the figures its sources report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.bundle import load_bundle
from training.cli import main
from training.compress.tagger import encode, predict, read_conll, word_scores
from training.compress.tasks import rebuild_task_model
from training.data import data_root
from training.evaluate.predictors import BundlePredictor
from training.evaluate.run import evaluate_file

pytestmark = [pytest.mark.real, pytest.mark.slow]

SOURCES = Path(__file__).resolve().parents[2] / "models" / "sources"
TASK_MODELS = sorted(
    p
    for p in SOURCES.iterdir()
    if (p / "source.json").is_file()
    and json.loads((p / "source.json").read_text())["kind"] == "task-head"
    and "-topic" not in p.name  # a topic model on a body of its own: test_topic_models.py
)


@pytest.mark.parametrize("sources", TASK_MODELS, ids=[p.name for p in TASK_MODELS])
def test_rebuilt_task_head_reproduces_its_reported_figures(sources: Path, tmp_path: Path) -> None:
    source = json.loads((sources / "source.json").read_text())
    (expected,) = source["evaluation"]
    split = expected["dataset"].rsplit("-", 1)[1]  # e.g. pos-sw-test
    task, language = Path(source["provenance"]["task_data"]).parts[-2:]
    data = data_root() / "tasks" / task / language / f"{split}.tsv"
    if not data.is_file():
        pytest.skip(f"shared data not found at {data} (set SMALLGLOT_DATA)")
    out = tmp_path / sources.name
    assert main(["build", str(sources), "--out", str(out)]) == 0  # reference labels, parity
    manifest = load_bundle(out).manifest
    assert (manifest.language, list(manifest.labels)) == (language, source["labels"])
    if manifest.task != "token-classification":  # scored as served: the fp32 bundle
        result = evaluate_file(BundlePredictor(out, "fp32"), data)
        assert result["n"] == expected["n"]
        # measured in PyTorch with the fp32 head: the fp16 sources may move one near-tie
        assert abs(result["accuracy"] - expected["accuracy"]) <= 1.5 / expected["n"], expected
        assert abs(result["macro_f1"] - expected["macro_f1"]) <= 3 / expected["n"], expected
        return
    assert manifest.label_scheme == source["bundle"]["label_scheme"]
    model, tokenizer, _ = rebuild_task_model(sources)
    sentences = read_conll(data)
    encoded = encode(tokenizer, sentences, source["labels"], source["max_length"])
    predicted = predict(model, encoded, tokenizer.pad_token_id)
    scheme = source["bundle"]["label_scheme"]
    result = word_scores(sentences.tags, predicted, source["labels"], scheme)
    assert len(sentences.words) == expected["n"]
    assert result["f1"] == pytest.approx(expected["f1"], abs=0.005), expected
    assert result["word_accuracy"] == pytest.approx(expected["word_accuracy"], abs=0.005)
