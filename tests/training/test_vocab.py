"""Vocabulary trimming on a tiny Unigram tokenizer and model: only kept pieces come out, ids
and embedding rows stay matched, and text whose pieces were all kept embeds exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from tests.training.unigram import PIECES, tiny_model
from training.cli import main
from training.data import read_corpus
from training.vocab.trim import trim_model


def test_trim_keeps_frequent_pieces_and_exact_embeddings(tmp_path: Path) -> None:
    tiny_model(tmp_path / "full")
    corpus = ["xin chào bạn"] * 5 + ["xin chào"] * 3
    report = trim_model(tmp_path / "full", tmp_path / "vi", corpus, ["xin chào bạn"], size=3)
    assert report["pieces_before"] == len(PIECES)
    assert report["heldout_unk_share_after"] == 0.0
    data = json.loads((tmp_path / "vi" / "tokenizer.json").read_text())
    kept = [piece for piece, _ in data["model"]["vocab"]]
    assert kept[:5] == ["<s>", "<pad>", "</s>", "<unk>", "▁"]
    assert {"▁xin", "▁chào", "▁bạn", "<mask>"} <= set(kept)
    assert "▁hello" not in kept  # never used in the corpus
    assert report["pieces_after"] == len(kept) < len(PIECES)
    old_tok = AutoTokenizer.from_pretrained(str(tmp_path / "full"))
    new_tok = AutoTokenizer.from_pretrained(str(tmp_path / "vi"))
    old = AutoModel.from_pretrained(str(tmp_path / "full")).eval()
    new = AutoModel.from_pretrained(str(tmp_path / "vi")).eval()
    assert new.config.vocab_size == len(kept)
    text = "xin chào bạn"
    old_ids, new_ids = old_tok(text)["input_ids"], new_tok(text)["input_ids"]
    assert old_tok.convert_ids_to_tokens(old_ids) == new_tok.convert_ids_to_tokens(new_ids)
    assert new_tok.mask_token_id == len(kept) - 1  # renumbered after the dropped pieces
    with torch.no_grad():
        before = old(input_ids=torch.tensor([old_ids])).last_hidden_state
        after = new(input_ids=torch.tensor([new_ids])).last_hidden_state
    torch.testing.assert_close(before, after)


def test_dropped_words_are_spelled_from_kept_characters(tmp_path: Path) -> None:
    tiny_model(tmp_path / "full")
    trim_model(tmp_path / "full", tmp_path / "vi", ["xin chào", "bạn bạn", "xin"], ["x"], size=2)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "vi"))
    pieces = tok.convert_ids_to_tokens(tok("xin chào bạn", add_special_tokens=False)["input_ids"])
    assert "<unk>" not in pieces
    assert "".join(pieces).replace("▁", " ").strip() == "xin chào bạn"


def test_only_unigram_tokenizers_are_trimmed(tmp_path: Path) -> None:
    from training.demo import build_char_tokenizer

    build_char_tokenizer().save_pretrained(str(tmp_path / "wp"))
    with pytest.raises(ValueError, match="only Unigram"):
        trim_model(tmp_path / "wp", tmp_path / "out", ["a"], ["a"], size=2)


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_model(tmp_path / "full")
    (tmp_path / "vi.txt").write_text("xin chào bạn\nxin chào\nbạn\n" * 20, encoding="utf-8")
    assert (
        main(
            [
                "vocab",
                "trim",
                "--model",
                str(tmp_path / "full"),
                "--corpus",
                str(tmp_path / "vi.txt"),
                "--out",
                str(tmp_path / "vi"),
                "--size",
                "4",
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["heldout_unk_share_after"] == 0.0
    assert "lines to count" in capsys.readouterr().out


def test_corpus_reads_a_table_column(tmp_path: Path) -> None:
    (tmp_path / "pairs.tsv").write_text("en\tvi\nhello\txin chào\n\t \nyou\tbạn\n", "utf-8")
    assert read_corpus(f"{tmp_path / 'pairs.tsv'}:vi") == ["xin chào", "bạn"]
    with pytest.raises(ValueError, match="no column 'fr'"):
        read_corpus(f"{tmp_path / 'pairs.tsv'}:fr")
    (tmp_path / "vi.txt").write_text("a\n\nb\n", encoding="utf-8")
    assert read_corpus(str(tmp_path / "vi.txt")) == ["a", "b"]
