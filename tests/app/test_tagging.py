"""A language's other tasks: POST /v1/tag/{language} (token-classification bundles, POS-style
tags and IOB2 entities, checked against the exported graph run directly) and POST
/v1/sentiment/{language}."""

from __future__ import annotations

import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from transformers import AutoTokenizer

from app.tagging import Word, WordInput, entities
from tests.app.conftest import make_client
from tests.bundles import build_bundle, edit_manifest

POS = ["NOUN", "VERB", "PUNCT", "ADJ"]
NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXT = "Rais Samia alitembelea Dodoma, na watu-wengi walifurahi sana!"


@pytest.fixture(scope="module")
def taggers(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("taggers")
    build_bundle(root, "sw-pos", "token-classification", "sw", POS, label_scheme="tags", seed=3)
    build_bundle(
        root, "sw-ner", "token-classification", "sw", NER, label_scheme="iob2", seed=4,
        default=False,
    )  # fmt: skip
    build_bundle(
        root, "sw-ner-b", "token-classification", "sw", NER, label_scheme="iob2", seed=5,
        default=False,
    )  # fmt: skip
    build_bundle(
        root, "sw-a-tiny", "classification", "sw", ["x", "y"], seed=6, default=False
    )  # sorts first, yet only answers when named
    build_bundle(root, "sw-sentiment", "sentiment", "sw", ["negative", "positive"], seed=7)
    shutil.copytree(built["sw-topic"], root / "sw-topic")
    return root


@pytest.fixture(scope="module")
def client(taggers: Path) -> Iterator[TestClient]:
    with make_client(taggers, max_texts_per_request=4, max_chars_per_text=400) as test_client:
        yield test_client


def expected_tags(bundle: Path, words: list[str]) -> list[str]:
    """The graph's label at each word's first sub-word token, computed without the service."""
    tokenizer = AutoTokenizer.from_pretrained(str(bundle / "tokenizer"))
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=32)
    session = ort.InferenceSession(str(bundle / "model.onnx"))
    ids = np.array([encoded["input_ids"]], dtype=np.int64)
    logits = session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    labels = [line for line in (NER if "ner" in bundle.name else POS)]
    first: dict[int, int] = {}
    for position, word in enumerate(encoded.word_ids()):
        if word is not None:
            first.setdefault(word, position)
    return [labels[int(logits[0, first[i]].argmax())] for i in range(len(words)) if i in first]


def test_text_is_split_into_words_with_their_spans_and_tagged_like_the_graph(
    client: TestClient, taggers: Path
) -> None:
    response = client.post("/v1/tag/sw", json={"text": "Rais Samia alitembelea Dodoma."})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["label_scheme"]) == ("sw-pos", "tags")
    result = body["results"][0]
    text = "Rais Samia alitembelea Dodoma."
    words = [w["word"] for w in result["words"]]
    assert words == ["Rais", "Samia", "alitembelea", "Dodoma", "."]
    for word in result["words"]:
        assert text[word["start"] : word["end"]] == word["word"]
        assert word["tag"] in POS
        assert 0 < word["score"] <= 1
    assert [w["tag"] for w in result["words"]] == expected_tags(taggers / "sw-pos", words)
    assert result["entities"] is None
    assert result["truncated"] is False


def test_ner_entities_are_the_iob2_runs_of_the_word_tags(client: TestClient) -> None:
    body = client.post("/v1/tag/swh", json={"texts": [TEXT], "model": "sw-ner"}).json()
    assert (body["model"], body["label_scheme"]) == ("sw-ner", "iob2")
    result = body["results"][0]
    words = [Word(**w) for w in result["words"]]
    item = WordInput.from_text(TEXT)
    assert [w.word for w in words] == item.words
    assert result["entities"]  # this random graph finds some
    assert result["entities"] == [asdict(e) for e in entities(item, words)]
    for entity in result["entities"]:
        tags = [w.tag for w in words[entity["first_word"] : entity["last_word"] + 1]]
        assert all(t is not None and t != "O" and t.endswith(entity["type"]) for t in tags)
        assert TEXT[entity["start"] : entity["end"]] == entity["text"]
    without = client.post(
        "/v1/tag/sw", json={"text": TEXT, "model": "sw-ner", "include_words": False}
    ).json()["results"][0]
    assert without["words"] is None
    assert without["entities"] == result["entities"]


def test_entity_merging_rules() -> None:
    item = WordInput(["Ali", "Hassan", "Juma", "wa", "Dar", "es", "Salaam", "x"])
    tags = ["B-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "B-LOC", None]
    words = [
        Word(w, None, None, t, 0.5 if t else None) for w, t in zip(item.words, tags, strict=True)
    ]
    found = entities(item, words)
    assert [(e.type, e.text, e.first_word, e.last_word) for e in found] == [
        ("PER", "Ali Hassan", 0, 1),
        ("PER", "Juma", 2, 2),
        ("LOC", "Dar es", 4, 5),  # an I- after O starts an entity
        ("LOC", "Salaam", 6, 6),
    ]
    assert found[0].start is None


@pytest.mark.parametrize(
    "text",
    [
        unicodedata.normalize("NFD", "Sản phẩm tốt quá 😍😍, giao nhanh!"),  # decomposed
        "Tôi yêu 🇻🇳 👍🏽 👨‍👩‍👧 ❤️ lắm",  # a flag, a skin tone, a family, a heart with its selector
        "l-Malta sabiħ, m'hemmx!",  # inner hyphens and apostrophes
    ],
)
def test_words_of_any_script_keep_their_spans_and_their_first_piece_tag(
    client: TestClient, taggers: Path, text: str
) -> None:
    result = client.post("/v1/tag/sw", json={"text": text}).json()["results"][0]
    words = [w["word"] for w in result["words"]]
    assert words == WordInput.from_text(text).words
    assert all(text[w["start"] : w["end"]] == w["word"] for w in result["words"])
    assert result["truncated"] is False
    assert [w["tag"] for w in result["words"]] == expected_tags(taggers / "sw-pos", words)
    tokenizer = AutoTokenizer.from_pretrained(str(taggers / "sw-pos" / "tokenizer"))
    pieces = tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids()
    assert max(pieces.count(i) for i in range(len(words))) > 1  # multi-piece words among them


def test_text_splits_into_words_as_universal_dependencies_does() -> None:
    assert WordInput.from_text("Dodoma, na watu-wengi!").words == [
        "Dodoma",
        ",",
        "na",
        "watu-wengi",
        "!",
    ]
    nfd = unicodedata.normalize("NFD", "Hà Nội đẹp quá")
    assert [unicodedata.normalize("NFC", w) for w in WordInput.from_text(nfd).words] == [
        "Hà",
        "Nội",
        "đẹp",
        "quá",
    ]  # combining marks stay with their letter
    assert WordInput.from_text("ok 👍🏽👍 🇻🇳🇰🇪").words == ["ok", "👍🏽", "👍", "🇻🇳", "🇰🇪"]


def test_pre_split_words_keep_their_words_and_have_no_offsets(
    client: TestClient, taggers: Path
) -> None:
    words = [["Dar es Salaam", "ni", "mji", "."], ["Habari"]]
    body = client.post("/v1/tag/sw", json={"words": words}).json()
    for sent, result in zip(words, body["results"], strict=True):
        assert [w["word"] for w in result["words"]] == sent
        assert all(w["start"] is None and w["end"] is None for w in result["words"])
        assert [w["tag"] for w in result["words"]] == expected_tags(taggers / "sw-pos", sent)


def test_words_past_the_limit_are_marked_never_dropped(client: TestClient) -> None:
    text = " ".join(["habari"] * 40)  # far more than 32 tokens
    result = client.post("/v1/tag/sw", json={"text": text}).json()["results"][0]
    assert result["truncated"] is True
    assert len(result["words"]) == 40
    tagged = [w for w in result["words"] if w["tag"] is not None]
    assert 0 < len(tagged) < 40
    assert all(w["score"] is None for w in result["words"][len(tagged) :])
    assert result["tokens"] > 32
    refused = client.post("/v1/tag/sw", json={"texts": ["habari", text], "truncate": False})
    assert refused.status_code == 422
    assert "texts[1]" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text": "x", "words": [["x"]]}, 422, "exactly one of"),
        ({"words": [[]]}, 422, "words[0] is empty"),
        ({"words": [["a", " "]]}, 422, "words[0][1] is empty"),
        ({"texts": ["a"] * 5}, 422, "at most 4 per request"),
        ({"text": "x", "model": "sw-topic"}, 404, "does not serve token-classification"),
        ({"text": "x", "model": None}, 422, "is null"),
        ({"text": ""}, 422, "texts[0] is empty or only whitespace"),
        ({"text": "a" * 401}, 422, "texts[0] has 401 characters; at most 400 per text"),
        ({"text": 5}, 422, "text: Input should be a valid string"),
        ({"texts": []}, 422, "`texts` is empty"),
        ({"texts": "abc"}, 422, "texts: Input should be a valid list"),
        ({"words": "abc"}, 422, "words: Input should be a valid list"),
        ({"words": [["a"]] * 5}, 422, "5 texts sent; at most 4 per request"),
        ({}, 422, "give exactly one of `text`, `texts` or `words`"),
        ({"text": "x", "include_words": "maybe"}, 422, "include_words: Input should be a valid"),
        ({"text": "x", "model": "nope"}, 404, "model 'nope' does not serve token-classification"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    client: TestClient, body: dict, status: int, message: str
) -> None:
    response = client.post("/v1/tag/sw", json=body)
    assert response.status_code == status
    assert message in response.text


def test_a_body_that_is_not_json_is_named(client: TestClient) -> None:
    response = client.post(
        "/v1/tag/sw", content=b'{"text": "x",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "body: not valid JSON (at character 13)"


def test_unknown_language_lists_the_tagged_ones(client: TestClient) -> None:
    response = client.post("/v1/tag/mt", json={"text": "x"})
    assert response.status_code == 404
    assert response.json()["error"]["details"]["languages"] == ["sw"]


def test_each_language_has_its_sentiment_route(client: TestClient) -> None:
    body = client.post("/v1/sentiment/swh", json={"texts": ["nzuri sana", "mbaya"]}).json()
    assert body["model"] == "sw-sentiment"
    assert [r["label"] in ("negative", "positive") for r in body["results"]] == [True, True]
    named = client.post("/v1/sentiment/sw", json={"text": "x", "model": "sw-sentiment"})
    assert named.status_code == 200
    missing = client.post("/v1/sentiment/mt", json={"text": "x"})
    assert missing.status_code == 404
    assert missing.json()["error"]["details"]["languages"] == ["sw"]
    wrong = client.post("/v1/sentiment/sw", json={"text": "x", "model": "sw-topic"})
    assert wrong.status_code == 404
    assert client.post("/v1/classify/sw", json={"text": "x"}).json()["model"] == "sw-topic"


def test_a_non_default_model_answers_only_when_named(client: TestClient) -> None:
    assert client.post("/v1/classify/sw", json={"text": "x"}).json()["model"] == "sw-topic"
    named = client.post("/v1/classify/sw", json={"text": "x", "model": "sw-a-tiny"}).json()
    assert named["model"] == "sw-a-tiny"
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["sw-a-tiny"]["default"] is False
    assert models["sw-ner"]["label_scheme"] == "iob2"
    assert models["sw-pos"]["task"] == "token-classification"


def test_iob2_bundles_with_malformed_labels_are_refused(taggers: Path, tmp_path: Path) -> None:
    broken = tmp_path / "sw-ner"
    shutil.copytree(taggers / "sw-ner", broken)
    edit_manifest(broken, lambda m: m.update(labels=["O", "I-PER", "B-LOC", "I-LOC", "X"]))
    with make_client(tmp_path) as only_broken:
        model = only_broken.get("/v1/models").json()["models"][0]
    assert model["status"] == "failed"
    assert "iob2 labels must be O, B-TYPE or I-TYPE" in model["error"]


def test_token_level_parity_counts_every_real_token(taggers: Path) -> None:
    import json

    manifest = json.loads((taggers / "sw-pos" / "manifest.json").read_text())
    assert manifest["parity"]["fp32"]["texts"] > 8  # tokens of the 8 parity texts, not texts
    assert manifest["parity"]["fp32"]["max_abs_diff"] < 1e-4
