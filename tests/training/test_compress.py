"""The compression pipeline on a tiny random XLM-R-like encoder (Unigram tokenizer) and
synthetic text: exact surgery, importance-ranked pruning, resumable distillation, and every
stage end to end through to a served bundle rebuilt from its sources."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoTokenizer, BertConfig, BertModel

from app.bundle import load_bundle
from tests.training.unigram import PIECES, tiny_model
from training.batches import pad_rows
from training.cli import main
from training.compress.config import CompressConfig, HeadConfig
from training.compress.distill import (
    BEST,
    NARROW,
    DistillSettings,
    Projection,
    distill,
    ffn_importance,
    most_important,
    prediction_loss,
    validate,
)
from training.compress.encoders import load_encoder, load_student
from training.compress.head import EncoderClassifier, MeanLogits, Soft, _HeadMethod
from training.compress.pipeline import Pipeline, found, from_base
from training.compress.surgery import (
    HEAD_LAYOUTS,
    ffn_contribution,
    layer_choice,
    parameters,
    prune_ffn,
    reduce_layers,
    truncate_hidden,
)
from training.compress.table import served
from training.compress.tagger import (
    IGNORE,
    Encoded,
    SoftTags,
    TokenClassifier,
    _TaggerMethod,
    words_of,
)
from training.loop import CHECKPOINT
from training.sources import body_digest

WORDS = ["xin", "chào", "bạn"]  # the language's text never uses "▁hello" or "▁world"
TOPICS = ["greeting", "people"]


def encoder(
    layers: int = 4, hidden: int = 24, heads: int = 4, ffn: int = 48, seed: int = 0
) -> BertModel:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(PIECES),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=64,
        pad_token_id=1,
    )
    return BertModel(config, add_pooling_layer=False).eval()


def per_layer(model: BertModel) -> int:
    return parameters(model.encoder.layer[0])


def states(model: BertModel, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state


def test_layer_choices() -> None:
    assert layer_choice(12, 6, "stride") == [1, 3, 5, 7, 9, 11]
    assert layer_choice(12, 6, "last") == [6, 7, 8, 9, 10, 11]
    assert layer_choice(12, 4, "first") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="cannot keep 13"):
        layer_choice(12, 13, "stride")
    with pytest.raises(ValueError, match="unknown layer initialisation"):
        layer_choice(12, 6, "middle")


def test_layer_reduction_copies_the_chosen_layers_exactly() -> None:
    teacher = encoder()
    student, chosen = reduce_layers(teacher, 2, "stride")
    assert chosen == [1, 3]
    assert parameters(student) == parameters(teacher) - 2 * per_layer(teacher)
    for s_layer, t in zip(student.encoder.layer, chosen, strict=True):
        for (name, p), q in zip(
            s_layer.named_parameters(), teacher.encoder.layer[t].parameters(), strict=True
        ):
            assert torch.equal(p, q), name
    assert teacher.config.num_hidden_layers == 4  # the teacher is untouched


def test_pruning_keeps_the_planted_neurons() -> None:
    model = encoder()
    planted = [torch.tensor([3, 9, 30, 47]), torch.tensor([0, 1, 2, 3])] * 2
    importance = []
    for keep in planted:
        scores = torch.rand(48) * 0.1
        scores[keep] = 1.0 + torch.rand(len(keep))
        importance.append(scores)
    chosen = most_important(importance, 4)
    assert [c.tolist() for c in chosen] == [k.tolist() for k in planted]
    pruned = prune_ffn(model, chosen)
    assert pruned.config.intermediate_size == 4
    assert parameters(pruned) == parameters(model) - 4 * 44 * (2 * 24 + 1)
    for layer, old, keep in zip(pruned.encoder.layer, model.encoder.layer, planted, strict=True):
        assert torch.equal(layer.intermediate.dense.weight, old.intermediate.dense.weight[keep])
        assert torch.equal(layer.output.dense.weight, old.output.dense.weight[:, keep])


def test_importance_ranks_dead_neurons_last_and_pruning_them_changes_nothing() -> None:
    model = encoder()
    dead = [0, 5, 7, 20]
    for layer in model.encoder.layer:
        layer.intermediate.dense.weight.data[dead] = 0
        layer.intermediate.dense.bias.data[dead] = 0
        layer.output.dense.weight.data[:, dead] = 0
    teacher = encoder(hidden=24)
    torch.manual_seed(1)
    ids = [list(np.random.default_rng(i).integers(4, len(PIECES) - 1, size=6)) for i in range(16)]
    importance = ffn_importance(model, teacher, ids, 1, [0, 1, 2, 3], DistillSettings())
    for scores in importance:
        assert set(torch.argsort(scores)[: len(dead)].tolist()) == set(dead)
    pruned = prune_ffn(model, most_important(importance, 48 - len(dead)))
    x = torch.tensor([ids[0], ids[1]])
    torch.testing.assert_close(states(pruned, x), states(model, x), atol=1e-5, rtol=1e-5)


def test_contribution_is_activation_times_output_norm_and_ranks_dead_neurons_last() -> None:
    """`ffn_contribution`: per neuron, the mean |activation| over the real tokens times its
    output column's norm (padding ignored); a neuron that never fires or writes nothing
    contributes nothing, so a cut keeping the rest changes nothing."""
    model = encoder()
    dead = [0, 5, 7, 20]
    for layer in model.encoder.layer:
        layer.output.dense.weight.data[:, dead] = 0
    ids = [
        list(np.random.default_rng(i).integers(4, len(PIECES) - 1, size=3 + i)) for i in range(9)
    ]
    contribution = ffn_contribution(model, ids, 1, batch_size=4)
    activations: list[torch.Tensor] = []
    hook = model.encoder.layer[1].intermediate.register_forward_hook(
        lambda _m, _i, out: activations.append(out[0].abs().sum(0))
    )
    with torch.no_grad():
        for row in ids:  # one text at a time: no padding at all
            model(input_ids=torch.tensor([row]))
    hook.remove()
    tokens = sum(len(row) for row in ids)
    norms = model.encoder.layer[1].output.dense.weight.norm(dim=0)
    expected = torch.stack(activations).sum(0) / tokens * norms
    torch.testing.assert_close(contribution[1], expected.detach(), atol=1e-5, rtol=1e-4)
    for scores in contribution:
        assert scores[dead].eq(0).all()
        assert scores.gt(0).sum() == 48 - len(dead)
    pruned = prune_ffn(model, most_important(contribution, 48 - len(dead)))
    x = torch.tensor([ids[0][:3], ids[1][:3]])
    torch.testing.assert_close(states(pruned, x), states(model, x), atol=1e-5, rtol=1e-5)


def test_truncation_keeps_the_first_k_dimensions() -> None:
    model = encoder()
    small = truncate_hidden(model, 12)
    assert small.config.hidden_size == 12
    assert small.config.num_attention_heads == 4
    emb = model.embeddings.word_embeddings.weight
    assert torch.equal(small.embeddings.word_embeddings.weight, emb[:, :12])
    old, new = model.encoder.layer[2], small.encoder.layer[2]
    assert torch.equal(new.attention.self.query.weight, old.attention.self.query.weight[:12, :12])
    assert torch.equal(new.intermediate.dense.weight, old.intermediate.dense.weight[:, :12])
    assert torch.equal(new.output.dense.weight, old.output.dense.weight[:12])
    assert torch.equal(new.output.LayerNorm.bias, old.output.LayerNorm.bias[:12])
    d, f, v, p = 12, 48, len(PIECES), 64
    layer = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    assert parameters(small) == v * d + p * d + 2 * d + 2 * d + 4 * layer
    with pytest.raises(ValueError, match="multiple of the 4 heads"):
        truncate_hidden(model, 10)


def test_whole_heads_keep_the_teachers_first_heads_intact() -> None:
    """On input that lives in the first k dimensions, a `whole` student's attention is exactly
    the teacher's first k / d heads; the `split` layout regroups them into new heads."""
    model = encoder().eval()  # 4 heads of 6
    for layer in model.encoder.layer:  # sharp attention: random init is near-uniform
        layer.attention.self.query.weight.data *= 30
        layer.attention.self.key.weight.data *= 30
    torch.manual_seed(3)
    x = torch.randn(2, 5, 12)
    padded = torch.cat([x, torch.zeros(2, 5, 12)], dim=-1)
    with torch.no_grad():
        teacher_out = model.encoder.layer[1].attention.self(padded)[0][..., :12]
        outs = {}
        for layout in HEAD_LAYOUTS:
            small = truncate_hidden(model, 12, layout).eval()
            outs[layout] = small.encoder.layer[1].attention.self(x)[0]
    assert truncate_hidden(model, 12, "whole").config.num_attention_heads == 2
    torch.testing.assert_close(outs["whole"], teacher_out)
    assert not torch.allclose(outs["split"], teacher_out, atol=1e-2)
    assert parameters(truncate_hidden(model, 12, "whole")) == parameters(truncate_hidden(model, 12))
    with pytest.raises(ValueError, match="multiple of the 6-wide heads"):
        truncate_hidden(model, 8, "whole")
    with pytest.raises(ValueError, match="unknown head layout"):
        truncate_hidden(model, 12, "some")


def test_distillation_learns_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    teacher = encoder()
    student, chosen = encoder(layers=2, seed=5), [1, 3]  # a random student: much to learn
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(4, len(PIECES) - 1, size=rng.integers(3, 9))) for _ in range(96)]
    settings = DistillSettings(epochs=1, learning_rate=3e-3, batch_size=16, checkpoint_every=2)
    first = distill(student, teacher, ids[:80], ids[80:], 1, chosen, settings, tmp_path)
    assert first["final_val"]["val_loss"] < first["initial_val"]["loss"]
    assert [h["step"] for h in first["history"]] == [2, 4, 5]  # every 2 steps and the epoch's end
    settings.epochs = 3  # extended: the checkpoint's weights, optimiser and position continue
    again = encoder(layers=2, seed=5)  # fresh weights: the checkpoint must win
    resumed = distill(again, teacher, ids[:80], ids[80:], 1, chosen, settings, tmp_path)
    assert "distil: resuming at step 5 of 15" in capsys.readouterr().out
    assert resumed["history"][:3] == first["history"]
    assert [h["epoch"] for h in resumed["history"]] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert resumed["final_val"]["val_loss"] < first["final_val"]["val_loss"]
    assert resumed["final_val"]["val_loss"] == min(h["val_loss"] for h in resumed["history"])
    assert resumed["initial_val"] == first["initial_val"]
    kept = validate(again, teacher, ids[80:], 1, chosen, settings)  # the student ends at its best
    assert kept["loss"] == pytest.approx(resumed["final_val"]["val_loss"], abs=1e-5)


def test_a_narrow_student_learns_through_a_projection_and_resumes_it(tmp_path: Path) -> None:
    teacher = encoder(layers=2)
    rng = np.random.default_rng(0)
    ids = [list(rng.integers(4, len(PIECES) - 1, size=rng.integers(3, 9))) for _ in range(96)]
    results = {}
    for narrow in NARROW:
        student = truncate_hidden(teacher, 12)
        settings = DistillSettings(
            epochs=2, learning_rate=3e-3, batch_size=16, checkpoint_every=3, narrow=narrow
        )
        results[narrow] = distill(
            student, teacher, ids[:80], ids[80:], 1, [0, 1], settings, tmp_path / narrow
        )
        assert results[narrow]["narrow"] == narrow
    for result in results.values():
        assert result["final_val"]["val_loss"] < result["initial_val"]["loss"]
    start = Projection(12, 24)(torch.ones(2, 12))  # starts as first-k: the student's k dims
    assert torch.equal(start, torch.cat([torch.ones(2, 12), torch.zeros(2, 12)], dim=1))
    saved = torch.load(tmp_path / "project" / CHECKPOINT, weights_only=False)["module"]
    assert saved["projection.map.weight"].shape == (24, 12)
    first_k = torch.load(tmp_path / "first-k" / CHECKPOINT, weights_only=False)["module"]
    assert not any(key.startswith("projection.") for key in first_k)
    with pytest.raises(ValueError, match="narrow"):
        DistillSettings(narrow="svd")


def toy_compression(root: Path) -> dict:  # type: ignore[type-arg]
    """A saved toy teacher, its language's text, topic data and a compression configuration
    using them, every stage included."""
    tiny_model(root / "base")
    torch.manual_seed(0)
    encoder().save_pretrained(str(root / "teacher"))
    AutoTokenizer.from_pretrained(str(root / "base")).save_pretrained(str(root / "teacher"))
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(2, 6))) for _ in range(300)]
    (root / "mono.txt").write_text("\n".join(lines), encoding="utf-8")
    (root / "task").mkdir()
    for split, n in (("train", 64), ("dev", 24), ("test", 24)):
        rows = ["index_id\tcategory\ttext"]
        for i in range(n):
            topic = TOPICS[i % 2]
            words = ["xin", "chào"] if topic == "greeting" else ["bạn", "chào"]
            text = " ".join(rng.choice(words, size=4))
            rows.append(f"{i}\t{topic}\t{text}")
        (root / "task" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = {
        "language": "vi",
        "teacher": str(root / "teacher"),
        "corpus": str(root / "mono.txt"),
        "task": {"data": str(root / "task"), "labels": TOPICS},
        "out": str(root / "run"),
        "layers": 2,
        "ffn": 32,
        "hidden": 12,
        "vocab_size": 8,
        "val_fraction": 0.1,
        "max_length": 16,
        "importance_texts": 20,
        "distill": {"epochs": 1, "learning_rate": 1e-3, "batch_size": 16},
        "task_distill": {
            "epochs": 2,
            "learning_rate": 1e-3,
            "batch_size": 16,
            "weight_prediction": 1.0,
            "temperature": 2.0,
        },
        "head": {
            "epochs": 3,
            "seeds": [1, 2],
            "intermediate_seeds": 1,
            "learning_rates": [1e-2, 3e-3],
            "batch_size": 8,
        },
        "threads": 1,
        "bundle": {
            "name": "vi-topic",
            "out": str(root / "models" / "vi-topic"),
            "sources": str(root / "models" / "sources" / "vi-topic"),
        },
    }
    return config


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compress")
    (root / "compress.yaml").write_text(yaml.safe_dump(toy_compression(root)))
    assert main(["compress", "run", str(root / "compress.yaml")]) == 0
    return root


def report(root: Path, stage: str) -> dict:
    folder = next((root / "run").glob(f"*-{stage}"))
    return json.loads((folder / "report.json").read_text())


def test_every_stage_shrinks_the_model_as_configured(compressed: Path) -> None:
    teacher = encoder()
    full = parameters(teacher)
    layers = report(compressed, "layers")
    assert layers["parameters"] == full - 2 * per_layer(teacher)
    assert layers["teacher_layers"] == [1, 3]
    prune = report(compressed, "prune")
    assert prune["parameters"] == layers["parameters"] - 2 * 16 * (2 * 24 + 1)
    assert (prune["ffn"], prune["hidden"]) == (32, 24)
    truncate = report(compressed, "truncate")
    assert (truncate["hidden"], truncate["layers"], truncate["ffn"]) == (12, 2, 32)
    vocab = report(compressed, "vocab")
    assert vocab["vocabulary"] == vocab["trim"]["pieces_after"] < len(PIECES)
    assert vocab["parameters"] == truncate["parameters"] - 12 * (len(PIECES) - vocab["vocabulary"])
    for stage in ("layers", "prune", "truncate", "vocab"):
        assert report(compressed, stage)["size_bytes"] > 0
    assert [h["epoch"] for h in layers["distillation"]["history"]] == [1]
    assert [h["epoch"] for h in truncate["distillation"]["history"]] == [1]


def test_task_distillation_teaches_the_students_classifier_the_baselines_topics(
    compressed: Path,
) -> None:
    task = report(compressed, "task")
    heads = report(compressed, "heads")["results"]["uncompressed"]
    assert task["teacher_head"]["seed"] == heads["best_seed"]  # the baseline's best by dev
    assert Path(task["teacher_head"]["file"]).is_file()
    run = task["distillation"]
    assert [h["epoch"] for h in run["history"]] == [1, 2]
    first, last = run["initial_val"], run["final_val"]
    assert last["val_prediction"] < first["prediction"]  # nearer the teacher's topics
    assert 0.0 <= last["val_agreement"] <= 1.0
    assert set(task["distilled_classifier"]) == {
        "dev_accuracy", "dev_macro_f1", "test_accuracy", "test_macro_f1"
    }  # fmt: skip
    assert (task["hidden"], task["vocabulary"]) == (12, len(PIECES))  # trimmed after it
    assert report(compressed, "vocab")["parameters"] < task["parameters"]
    assert task["classifier_start"] == "fresh"  # narrower than the teacher, the default start


def test_a_narrow_students_task_distillation_can_start_at_the_teachers_topics(
    compressed: Path,
) -> None:
    """`task_start: mapped`: the narrower student's classifier starts as the teacher's read
    through the map its truncation's distillation learned, and the hidden-state comparison
    starts at that map: the first validation is exactly that, recomputed here."""
    config = yaml.safe_load((compressed / "compress.yaml").read_text())
    config |= {"out": str(compressed / "mapped"), "base": str(compressed / "run")}
    config |= {"task_start": "mapped"}
    pipeline = Pipeline(CompressConfig.model_validate(config))
    pipeline.run(["truncate", "task"])
    task = json.loads((compressed / "mapped" / "4-task" / "report.json").read_text())
    assert task["classifier_start"] == "mapped"
    mapping = torch.load(compressed / "mapped" / "3-truncate" / BEST)["projection.map.weight"]
    assert not torch.equal(mapping, Projection(12, 24).map.weight)  # learned, not first-k
    teacher = EncoderClassifier(load_encoder(compressed / "teacher"), TOPICS, "adapter", 16)
    teacher.load_state_dict(torch.load(task["teacher_head"]["file"]))
    classifier, projection = torch.nn.Linear(12, 2), Projection(12, 24)
    with torch.no_grad():
        classifier.weight.copy_(teacher.classifier.weight @ mapping)
        classifier.bias.copy_(teacher.classifier.bias)
        projection.map.weight.copy_(mapping)
    student = load_encoder(compressed / "mapped" / "3-truncate" / "model")
    first = validate(
        student, teacher.encoder.eval(), pipeline.task_ids()[1], pipeline.tokenizer.pad_token_id,
        report(compressed, "layers")["teacher_layers"], pipeline.config.task_distill, 64,
        projection, (classifier, teacher.classifier),
    )  # fmt: skip
    assert first == task["distillation"]["initial_val"]
    final = task["distillation"]["final_val"]
    assert final["val_prediction"] < first["prediction"]
    with pytest.raises(ValueError, match="start_map"):  # a same-width student has no map
        distill(
            encoder(layers=2), encoder(layers=2), [[4, 5]], [[4, 5]], 1, [0, 1],
            DistillSettings(), compressed / "same-width", start_map=mapping,
        )  # fmt: skip


def test_prediction_loss_is_zero_only_when_the_distributions_agree() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    assert float(prediction_loss(logits, logits, 2.0)) == pytest.approx(0.0, abs=1e-7)
    moved = float(prediction_loss(logits.flip(-1), logits, 2.0))
    assert moved > 0
    with pytest.raises(ValueError, match="temperature"):
        DistillSettings(temperature=0)


def test_a_full_width_candidate_reuses_the_base_runs_shared_stages(
    compressed: Path, capsys: pytest.CaptureFixture
) -> None:
    """A second candidate of the same language (here at the teacher's width, so truncation
    keeps the model and task distillation is off) takes the base run's layers, prune and
    head runs instead of repeating them."""
    config = yaml.safe_load((compressed / "compress.yaml").read_text())
    config |= {"out": str(compressed / "wide"), "base": str(compressed / "run"), "hidden": 24}
    config["head"] |= {"skip": ["layers"]}
    config["bundle"] |= {"name": "vi-topic-wide", "out": str(compressed / "models" / "wide")}
    config["bundle"]["sources"] = str(compressed / "models" / "sources" / "vi-topic-wide")
    del config["task_distill"]
    (compressed / "wide.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["compress", "run", str(compressed / "wide.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"layers: done earlier ({compressed / 'run'}" in out
    assert "uncompressed seed 1 lr 0.01: done earlier" in out
    assert "prune seed 1 lr 0.01: done earlier" in out
    assert '"model": "prune"' not in out  # copied from the base run, not retrained
    wide = compressed / "wide"
    assert not (wide / "1-layers").exists()
    truncate = json.loads((wide / "3-truncate" / "report.json").read_text())
    task = json.loads((wide / "4-task" / "report.json").read_text())
    assert (truncate["same_as"], task["same_as"]) == ("prune", "truncate")
    assert not (wide / "3-truncate" / "model").exists()
    heads = json.loads((wide / "6-heads" / "report.json").read_text())["results"]
    assert list(heads) == ["uncompressed", "prune", "vocab"]  # layers skipped
    assert heads["vocab"]["reduction"] == 16  # as wide as the teacher
    source = json.loads((compressed / "models/sources/vi-topic-wide/source.json").read_text())
    assert "task-aware" not in source["provenance"]["method"]
    with pytest.raises(ValueError, match="cannot leave out"):
        HeadConfig(skip=["vocab"])
    other = config | {"out": str(wide / "x"), "task": config["task"] | {"labels": TOPICS[::-1]}}
    (compressed / "other.yaml").write_text(yaml.safe_dump(other))
    assert main(["compress", "run", str(compressed / "other.yaml")]) == 2
    assert "was run with other settings: ['task']" in capsys.readouterr().err


def test_a_candidate_of_another_shape_takes_from_its_base_what_it_shares(
    compressed: Path, capsys: pytest.CaptureFixture
) -> None:
    """Another FFN width shares the layers stage and the baseline's heads, not the prune
    stage; another depth shares the baseline's heads only (they teach the task-aware
    distillation, so both candidates learn from the same teacher)."""
    config = yaml.safe_load((compressed / "compress.yaml").read_text())
    config |= {"base": str(compressed / "run"), "ffn": 16}
    base = compressed / "run"
    narrow_ffn = CompressConfig.model_validate(config | {"out": str(compressed / "ffn16")})
    assert from_base(narrow_ffn) == ("uncompressed", "layers")
    assert found(narrow_ffn, "layers") == base / "1-layers"
    assert found(narrow_ffn, "prune") == compressed / "ffn16" / "2-prune"
    shallow = CompressConfig.model_validate(config | {"out": str(compressed / "l1"), "layers": 1})
    assert from_base(shallow) == ("uncompressed",)
    assert found(shallow, "layers") == compressed / "l1" / "1-layers"
    assert from_base(narrow_ffn.model_copy(update={"base": None})) == ()
    (compressed / "ffn16.yaml").write_text(
        yaml.safe_dump(config | {"out": str(compressed / "ffn16")})
    )
    capsys.readouterr()
    command = ["compress", "run", str(compressed / "ffn16.yaml"), "--stage", "layers"]
    assert main([*command, "--stage", "prune"]) == 0
    out = capsys.readouterr().out
    assert f"layers: done earlier ({base / '1-layers'}" in out
    assert "prune: starting" in out
    pruned = json.loads((compressed / "ffn16" / "2-prune" / "report.json").read_text())
    assert pruned["ffn"] == 16
    assert pruned["parameters"] < report(compressed, "prune")["parameters"]
    # a variant of that candidate (here: without task-aware distillation) based on it reaches
    # the layers stage it borrowed from its own base, and takes its prune stage
    variant = CompressConfig.model_validate(
        config | {"out": str(compressed / "ffn16-variant"), "base": str(compressed / "ffn16")}
    )
    assert from_base(variant) == ("uncompressed", "layers", "prune")
    assert found(variant, "layers") == base / "1-layers"
    assert found(variant, "prune") == compressed / "ffn16" / "2-prune"
    missing = variant.model_copy(update={"base": compressed / "nowhere"})
    with pytest.raises(ValueError, match="is not a compression run"):
        found(missing, "layers")
    itself = narrow_ffn.model_copy(update={"base": compressed / "ffn16"})  # its own base
    with pytest.raises(ValueError, match="lead back to"):
        found(itself, "layers")


def test_trimmed_tokenizer_segments_like_the_original(compressed: Path) -> None:
    final = next((compressed / "run").glob("*-vocab")) / "model" / "tokenizer.json"
    original = Tokenizer.from_file(str(compressed / "teacher" / "tokenizer.json"))
    trimmed = Tokenizer.from_file(str(final))
    for line in (compressed / "mono.txt").read_text(encoding="utf-8").splitlines()[:50]:
        assert trimmed.encode(line).tokens == original.encode(line).tokens


def test_heads_are_reported_for_the_baseline_and_every_stage(compressed: Path) -> None:
    heads = report(compressed, "heads")
    assert list(heads["results"]) == [
        "uncompressed", "layers", "prune", "truncate", "task", "vocab"
    ]  # fmt: skip
    assert heads["results"]["uncompressed"]["reduction"] == 16
    assert heads["results"]["vocab"]["reduction"] == 2
    for name, result in heads["results"].items():
        assert len(result["runs"]) == (2 if name in ("uncompressed", "vocab") else 1)
        assert 0 <= result["test_accuracy"]["mean"] <= 1
        search = result["learning_rate_search"]  # seed 1 at each rate, the best dev kept
        assert list(search) == ["0.01", "0.003"]
        assert search[str(result["learning_rate"])] == max(search.values())
        assert result["runs"][0]["dev_macro_f1"] == max(search.values())


def test_the_exported_student_is_served_and_rebuilds(compressed: Path) -> None:
    bundle = load_bundle(compressed / "models" / "vi-topic")
    assert (bundle.manifest.task, bundle.manifest.language) == ("classification", "vi")
    assert list(bundle.manifest.labels) == TOPICS
    manifest = bundle.manifest.raw
    assert set(manifest["variants"]) == {"fp32", "fp16", "int8"}
    assert manifest["parity"]["fp32"]["label_agreement"] == 1.0
    (evaluation,) = manifest["evaluation"]
    assert (evaluation["dataset"], evaluation["n"]) == ("sib200-vi-test", 24)
    sources = compressed / "models" / "sources" / "vi-topic"
    out = compressed / "rebuilt"
    assert main(["build", str(sources), "--out", str(out)]) == 0  # checks reference labels
    assert load_bundle(out).manifest.raw["evaluation"] == manifest["evaluation"]


def test_finished_stages_are_skipped(compressed: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["compress", "run", str(compressed / "compress.yaml"), "--stage", "layers"]
    assert main(args) == 0
    assert "layers: done earlier" in capsys.readouterr().out


def test_the_results_table_joins_stage_heads_and_speed_reports(
    compressed: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    timing = {"fp32_bytes": 4_000_000, "int8_bytes": 1_000_000, "batch1_texts_per_s": 10.0}
    speed = {
        "machine": "test",
        "onnxruntime_int8": {
            "uncompressed": timing | {"batch32_texts_per_s": 40.0, "batch1_vs_uncompressed": 1.0},
            "vocab": timing | {"batch32_texts_per_s": 400.0, "batch32_vs_uncompressed": 10.0},
        },
    }
    (tmp_path / "speed.json").write_text(json.dumps(speed))
    out = tmp_path / "tables" / "vi"
    args = ["compress", "table", str(compressed / "run"), "--speed", str(tmp_path / "speed.json")]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.with_suffix(".md").read_text()
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert list(rows) == ["uncompressed", "layers", "prune", "truncate", "task", "vocab"]
    assert rows["uncompressed"]["parameters"] == parameters(encoder())
    assert rows["vocab"]["parameters"] == report(compressed, "vocab")["parameters"]
    heads = report(compressed, "heads")["results"]
    assert rows["prune"]["test_accuracy"] == heads["prune"]["test_accuracy"]
    assert rows["vocab"]["speed"]["batch32_texts_per_s"] == 400.0
    assert "| 5 vocab (served) | 2 × 12, FFN 32 |" in printed
    assert "400 (10.00×)" in printed
    assert main(["compress", "table", str(tmp_path), "--out", str(out)]) == 2
    assert "is not a compression run" in capsys.readouterr().err
    # a candidate based on a candidate based on the run: its table reaches the shared stages
    # through both, and its final student, whose bundle stays under the run, is not served
    settings = json.loads((compressed / "run" / "compress-config.json").read_text())
    base = compressed / "run"
    for name in ("candidate", "variant"):
        run = tmp_path / name
        (run / "5-vocab").mkdir(parents=True)
        bundle = settings["bundle"] | {"out": str(run / "bundle")}
        config = settings | {"out": str(run), "base": str(base), "bundle": bundle}
        (run / "compress-config.json").write_text(json.dumps(config))
        base = run
    for stage in ("5-vocab", "6-heads"):
        (base / stage).mkdir(exist_ok=True)
        shutil.copyfile(compressed / "run" / stage / "report.json", base / stage / "report.json")
    assert main(["compress", "table", str(base), "--out", str(tmp_path / "variant-table")]) == 0
    printed = capsys.readouterr().out
    assert "\n| 1 layers |" in printed
    assert "\n| 2 prune |" in printed
    assert "| 5 vocab (final, not served) | 2 × 12, FFN 32 |" in printed
    looped = json.loads((base / "compress-config.json").read_text()) | {"base": str(base)}
    (base / "compress-config.json").write_text(json.dumps(looped))
    assert main(["compress", "table", str(base), "--out", str(tmp_path / "looped")]) == 2
    assert "lead back to" in capsys.readouterr().err


def test_the_speed_benchmark_times_every_stage_and_breaks_the_student_down(
    compressed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import compress_speed

    out = tmp_path / "speed.json"
    args = [str(compressed / "run"), "--no-engine", "--breakdown", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", ["compress_speed.py", *args, "--report", str(out)])
    compress_speed.main()
    result = json.loads(out.read_text())
    timings = result["onnxruntime_int8"]
    assert list(timings) == ["uncompressed", "layers", "prune", "truncate", "task", "vocab"]
    assert timings["uncompressed"]["batch32_vs_uncompressed"] == 1.0
    assert timings["vocab"]["int8_bytes"] < timings["uncompressed"]["int8_bytes"]
    parts = result["breakdown"]
    assert list(parts) == ["uncompressed", "vocab", "vocab, whole heads"]
    assert [parts[name]["heads"] for name in parts] == [4, 4, 2]  # 12 wide: 2 heads of 6
    for row in parts.values():
        for graph in ("fp32, 1 thread(s)", "int8, 1 thread(s)"):
            assert row[graph]["batch32_texts_per_s"] > 0
        shares = row["int8 operator shares, batch 32"]
        assert 0.5 < sum(shares.values()) <= 1.0
        assert list(shares.values()) == sorted(shares.values(), reverse=True)


def test_the_speed_benchmark_times_the_models_in_turn() -> None:
    """Each round visits every model once, starting one model later than the round before,
    so no model is always timed first (or last) when the machine is warm (or busy)."""
    from types import SimpleNamespace

    from benchmarks import compress_speed

    visits: list[str] = []

    def timing(name: str) -> compress_speed.Timing:
        run = SimpleNamespace(run=lambda _outputs, feed: visits.append(feed["model"]))
        feeds = [{"model": name}]
        return compress_speed.Timing(run, feeds, feeds, texts=4, row={"int8_bytes": 1})

    rows = compress_speed.in_turn({name: timing(name) for name in "abc"}, repeats=3)
    rounds = ["".join(visits[i : i + 6 : 2]) for i in range(0, 18, 6)]  # batch 1 of each
    assert rounds == ["abc", "bca", "cab"]
    assert visits[1::2] == visits[::2]  # batch 32 right after the same model's batch 1
    assert list(rows) == ["a", "b", "c"]
    assert all(row["int8_bytes"] == 1 and row["batch32_texts_per_s"] > 0 for row in rows.values())


def test_the_speed_benchmark_reports_the_median_of_whole_runs_and_their_range(
    compressed: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--runs 2` measures twice, each in a fresh process, and reports per model the median
    texts/s and ratio (ratios taken within each run) with the ratios' range."""
    from benchmarks import compress_speed

    def run(uncompressed: float, student: float) -> dict:
        rows = {"uncompressed": (uncompressed, 1.0), "vocab": (student, student / uncompressed)}
        return {  # batch 32 twice as fast as batch 1, in every run
            "onnxruntime_int8": {
                name: {
                    "batch1_texts_per_s": speed,
                    "batch1_vs_uncompressed": round(ratio, 2),
                    "batch32_texts_per_s": 2 * speed,
                    "batch32_vs_uncompressed": round(ratio, 2),
                }
                for name, (speed, ratio) in rows.items()
            }
        }

    result = compress_speed.combined([run(100.0, 240.0), run(110.0, 300.0), run(90.0, 225.0)])
    student = result["onnxruntime_int8"]["vocab"]
    assert student["batch1_texts_per_s"] == 240.0  # the median run's, not a mean
    assert student["batch1_vs_uncompressed"] == 2.5  # median of 2.4, 2.73, 2.5
    assert student["batch32_range"] == [2.4, 2.73]
    assert result["runs"] == 3
    assert [r["vocab"]["batch1_texts_per_s"] for r in result["each_run"]] == [240.0, 300.0, 225.0]

    out = tmp_path / "speed.json"
    args = [str(compressed / "run"), "--no-engine", "--final-only", "--repeats", "1"]
    given = ["compress_speed.py", *args, "--runs", "2", "--report", str(out)]
    monkeypatch.setattr(sys, "argv", given)
    compress_speed.main()
    result = json.loads(out.read_text())
    assert result["runs"] == 2
    assert list(result["onnxruntime_int8"]) == ["uncompressed", "vocab"]
    low, high = result["onnxruntime_int8"]["vocab"]["batch32_range"]
    each = sorted(r["vocab"]["batch32_vs_uncompressed"] for r in result["each_run"])
    assert each == [low, high]
    assert "--runs 2" in result["command"]
    for wrong, problem in (
        (["--runs", "0"], "--runs must be at least 1, not 0"),
        (["--runs", "2", "--breakdown"], "--breakdown is one run's analysis"),
    ):
        monkeypatch.setattr(sys, "argv", ["compress_speed.py", *args, *wrong])
        with pytest.raises(SystemExit):
            compress_speed.main()
        assert problem in capsys.readouterr().err


def test_the_speed_benchmark_times_untrained_shapes_beside_the_final_student(
    compressed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from benchmarks import compress_speed

    assert compress_speed.shape_of("6x384x768") == (6, 384, 768)
    with pytest.raises(argparse.ArgumentTypeError, match="LAYERSxHIDDENxFFN"):
        compress_speed.shape_of("6x384")
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    cut = compress_speed.cut_shape(BertModel(config), (1, 16, 48))
    shape = (cut.config.num_hidden_layers, cut.config.hidden_size, cut.config.intermediate_size)
    assert shape == (1, 16, 48)
    assert cut.config.num_attention_heads == 2  # whole heads of 8
    out = tmp_path / "speed.json"
    args = [str(compressed / "run"), "--no-engine", "--final-only", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", ["compress_speed.py", *args, "--report", str(out)])
    compress_speed.main()
    assert list(json.loads(out.read_text())["onnxruntime_int8"]) == ["uncompressed", "vocab"]


def test_the_speed_benchmark_times_sources_beside_the_uncompressed_model_from_a_recipe(
    compressed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`--sources NAME=DIR` times a body from its sources (a task's own body, a served
    student); given a recipe whose run is not here, the uncompressed model is its baseline."""
    from benchmarks import compress_speed

    recipe = yaml.safe_load((compressed / "compress.yaml").read_text())
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe | {"out": str(tmp_path / "no")}))
    student = compressed / "models" / "sources" / "vi-topic"
    out = tmp_path / "speed.json"
    args = [str(tmp_path / "recipe.yaml"), "--no-engine", "--repeats", "1", "--report", str(out)]
    monkeypatch.setattr(sys, "argv", ["compress_speed.py", *args, "--sources", f"toy={student}"])
    compress_speed.main()
    rows = json.loads(out.read_text())["onnxruntime_int8"]
    assert list(rows) == ["uncompressed", "toy"]
    assert rows["toy"]["parameters"] == parameters(load_student(student)[0])
    assert rows["toy"]["batch32_vs_uncompressed"] > 0
    for wrong, problem in ((f"{student}", "is not NAME=DIR"), (f"x={tmp_path}", "holds no body")):
        monkeypatch.setattr(sys, "argv", ["compress_speed.py", *args, "--sources", wrong])
        with pytest.raises(SystemExit):
            compress_speed.main()
        assert problem in capsys.readouterr().err


def test_a_stopped_heads_stage_resumes_per_seed(
    compressed: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = next((compressed / "run").glob("*-heads"))
    before = report(compressed, "heads")
    (folder / "report.json").unlink()
    rate = before["results"]["vocab"]["learning_rate"]
    (folder / "runs" / f"vocab-seed2-lr{rate:g}.json").unlink()  # stopped while training it
    args = ["compress", "run", str(compressed / "compress.yaml"), "--stage", "heads"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "uncompressed seed 1 lr 0.01: done earlier" in out
    assert "vocab seed 1 lr 0.003: done earlier" in out
    assert f'"model": "vocab", "learning_rate": {rate}, "seed": 2' in out  # only it retrained
    assert out.count('"model": ') == 1
    after = report(compressed, "heads")
    assert after["results"]["layers"]["runs"] == before["results"]["layers"]["runs"]
    assert "layers seed 2" not in out  # one seed for the stages between
    assert len(after["results"]["vocab"]["runs"]) == 2
    assert (folder / "final-head.pt").is_file()


def test_a_stage_without_its_predecessor_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "mono.txt").write_text("xin chào\n" * 20, encoding="utf-8")
    tiny_model(tmp_path / "teacher")
    config = {
        "language": "vi",
        "teacher": str(tmp_path / "teacher"),
        "corpus": str(tmp_path / "mono.txt"),
        "task": {"data": str(tmp_path)},
        "out": str(tmp_path / "run"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["compress", "run", str(tmp_path / "c.yaml"), "--stage", "truncate"]) == 2
    assert "needs stage prune first" in capsys.readouterr().err


def write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in sent) + "\n" for sent in sentences),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def task_heads(compressed: Path) -> Path:
    """Sentiment, POS and NER heads on the served toy student, packed and built."""
    root = compressed / "tasks-data"
    rng = np.random.default_rng(1)
    for split, n in (("train", 48), ("dev", 16), ("test", 16)):
        (root / "sa").mkdir(parents=True, exist_ok=True)
        rows = ["text\tlabel"] + [
            f"{'xin xin' if i % 2 else 'bạn bạn'} chào\t{'positive' if i % 2 else 'negative'}"
            for i in range(n)
        ]
        (root / "sa" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        pos = [
            [(w, "INTJ" if w == "chào" else "NOUN") for w in rng.choice(WORDS, size=4)]
            for _ in range(n)
        ]
        ner = [
            [
                (w, {"xin": "B-PER", "bạn": "I-PER"}.get(w, "O"))
                for w in ["xin", "bạn", "chào", *rng.choice(["chào", "xin"], size=2)]
            ]
            for _ in range(n)
        ]
        for task, sentences in (("pos", pos), ("ner", ner)):
            if task == "ner" and split == "test":
                continue  # like WikiANN here: no labelled test split
            (root / task).mkdir(exist_ok=True)
            write_conll(root / task / f"{split}.tsv", sentences)
    config = {
        "language": "vi",
        "student": str(compressed / "models" / "sources" / "vi-topic"),
        "out": str(compressed / "tasks"),
        "baseline": str(compressed / "teacher"),
        "sources": str(compressed / "models" / "sources"),
        "models": str(compressed / "models"),
        "max_length": 16,
        "threads": 1,
        "head": {"learning_rates": [1e-2, 3e-3], "seeds": [1, 2], "epochs": 3, "batch_size": 8},
        "tasks": {
            "sentiment": {"data": str(root / "sa"), "kind": "sequence"},
            "pos": {"data": str(root / "pos"), "kind": "tokens", "scheme": "tags", "default": True},
            "ner": {"data": str(root / "ner"), "kind": "tokens", "scheme": "iob2", "holdout": 0.25},
        },
    }
    (compressed / "tasks.yaml").write_text(yaml.safe_dump(config))
    assert main(["compress", "tasks", str(compressed / "tasks.yaml")]) == 0  # packs and builds
    baseline = ["compress", "tasks", str(compressed / "tasks.yaml"), "--baseline", "--task", "pos"]
    assert main(baseline) == 0  # the same heads on the uncompressed model: reported only
    return compressed


def test_task_heads_are_chosen_and_reported_as_configured(task_heads: Path) -> None:
    reports = {
        task: json.loads((task_heads / "tasks" / task / "report.json").read_text())
        for task in ("sentiment", "pos", "ner")
    }
    assert reports["ner"]["choose_split"] == "train-holdout"
    assert reports["ner"]["report_split"] == "dev"
    assert reports["ner"]["sizes"] == {"train": 36, "choose": 12, "report": 16}
    assert (reports["pos"]["report_split"], reports["sentiment"]["report_split"]) == (
        "test",
        "test",
    )
    assert set(reports["ner"]["figures"]) >= {"report_f1", "report_precision", "choose_f1"}
    assert set(reports["pos"]["figures"]) >= {
        "report_f1",
        "report_word_accuracy",
        "report_macro_f1",
    }
    assert reports["pos"]["labels"] == ["INTJ", "NOUN"]
    assert reports["pos"]["reduction"] == 2  # a narrow student
    for report in reports.values():
        assert len(report["runs"]) == 2
        assert set(report["learning_rate_search"]) == {"0.01", "0.003"}


def test_the_baselines_heads_are_reported_beside_the_students_never_packed(
    task_heads: Path,
) -> None:
    student = json.loads((task_heads / "tasks" / "pos" / "report.json").read_text())
    baseline = json.loads((task_heads / "tasks" / "baseline" / "pos" / "report.json").read_text())
    assert baseline["sizes"] == student["sizes"]
    assert baseline["labels"] == student["labels"]
    assert {"report_f1", "report_word_accuracy"} <= set(baseline["figures"])
    assert not (task_heads / "tasks" / "baseline" / "sentiment").exists()  # --task pos only
    source = json.loads((task_heads / "models" / "sources" / "vi-pos" / "source.json").read_text())
    assert source["provenance"]["learning_rate"] == student["learning_rate"]  # the student's


def test_task_sources_hold_only_the_head_and_name_their_body(task_heads: Path) -> None:
    sources = task_heads / "models" / "sources"
    head = sources / "vi-pos" / "head.safetensors"
    body = sources / "vi-topic" / "model.safetensors"
    assert head.stat().st_size < body.stat().st_size / 3
    source = json.loads((sources / "vi-pos" / "source.json").read_text())
    assert source["body"] == "../vi-topic"
    assert source["bundle"]["label_scheme"] == "tags"


def test_renamed_sources_keep_their_heads_which_follow_them(
    task_heads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`rename`: a student giving up its slot moves to a new name with its bundle (made
    non-default here), the heads that name it as their body point at the new place, keep
    its identity, and still rebuild to their reference predictions; a taken name is refused."""
    sources = tmp_path / "sources"
    shutil.copytree(task_heads / "models" / "sources", sources)
    before = body_digest(sources / "vi-topic")
    assert main(["rename", str(sources / "vi-topic"), "vi-topic-small", "--default", "no"]) == 0
    moved = json.loads((sources / "vi-topic-small" / "source.json").read_text())
    assert moved["bundle"]["name"] == "vi-topic-small"
    assert moved["bundle"]["default"] is False
    assert Path(moved["bundle"]["out"]).name == "vi-topic-small"
    assert not (sources / "vi-topic").exists()
    assert body_digest(sources / "vi-topic-small") == before  # the heads' runs still match
    pos = json.loads((sources / "vi-pos" / "source.json").read_text())
    assert pos["body"] == "../vi-topic-small"
    assert main(["build", str(sources / "vi-pos"), "--out", str(tmp_path / "pos")]) == 0
    assert load_bundle(tmp_path / "pos").manifest.name == "vi-pos"
    capsys.readouterr()
    assert main(["rename", str(sources / "vi-topic-small"), "vi-pos"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["rename", str(sources / "vi-topic-small"), "../elsewhere"]) == 2
    assert "is not a folder name" in capsys.readouterr().err


def test_task_bundles_are_served_and_their_rebuild_is_checked(
    task_heads: Path, capsys: pytest.CaptureFixture
) -> None:
    models = task_heads / "models"
    ner = load_bundle(models / "vi-ner").manifest
    assert (ner.task, ner.label_scheme, ner.default) == ("token-classification", "iob2", False)
    pos = load_bundle(models / "vi-pos").manifest
    assert (pos.label_scheme, pos.default) == ("tags", True)
    sentiment = load_bundle(models / "vi-sentiment").manifest
    assert (sentiment.task, sentiment.labels) == ("sentiment", ("negative", "positive"))
    recorded = json.loads((models / "sources" / "vi-pos" / "source.json").read_text())
    assert all(
        len(tags.split()) == len(text.split())
        for text, tags in zip(
            recorded["reference"]["texts"], recorded["reference"]["labels"], strict=True
        )
    )
    capsys.readouterr()
    args = ["build", str(models / "sources" / "vi-pos"), "--if-changed"]
    assert main(args) == 0
    assert "is current" in capsys.readouterr().out
    (models / "sources" / "vi-topic" / "note.txt").write_text("the body changed")
    try:
        assert main(args) == 0  # a changed body makes the head's bundle stale: rebuilt, checked
        assert "building" in capsys.readouterr().out
    finally:
        (models / "sources" / "vi-topic" / "note.txt").unlink()


def test_task_heads_of_another_student_are_trained_again_not_reused(
    task_heads: Path, capsys: pytest.CaptureFixture
) -> None:
    """A finished seed is reused only for the same student sources and settings: a new
    student under the same name gets heads of its own; the same student with its record
    rewritten (moved into place: where its bundle goes, how it scored) keeps them."""
    config = str(task_heads / "tasks.yaml")
    body = task_heads / "models" / "sources" / "vi-topic"
    record = (body / "source.json").read_text()
    moved = json.loads(record)
    moved["bundle"] |= {"out": "elsewhere/vi-topic", "sources": "elsewhere/sources/vi-topic"}
    moved["evaluation"] = []
    (body / "source.json").write_text(json.dumps(moved))
    capsys.readouterr()
    try:
        assert main(["compress", "tasks", config, "--task", "sentiment"]) == 0
    finally:
        (body / "source.json").write_text(record)
    out = capsys.readouterr().out
    assert out.count("done earlier") == 3  # the two rates' first seed, then seed 2
    assert "another body" not in out
    (body / "note.txt").write_text("another student")
    try:
        assert main(["compress", "tasks", config, "--task", "sentiment"]) == 0
        out = capsys.readouterr().out
        assert "done earlier" not in out
        assert out.count("is of another body or settings") == 3
    finally:
        (body / "note.txt").unlink()
    saved = json.loads(
        (task_heads / "tasks" / "sentiment" / "runs" / "seed1-lr0.01.json").read_text()
    )
    assert saved["encoder_id"] != body_digest(body)  # trained on the body with the note


def test_a_head_distils_its_teacher_on_the_unlabeled_rows_only() -> None:
    """Labelled rows give cross-entropy, unlabeled ones T^2 * KL to the teacher's logits, and
    a batch mixing them sums the two."""
    torch.manual_seed(0)
    model = EncoderClassifier(encoder(), ["a", "b"], "adapter", 2).eval()
    train = ([[2, 3, 4], [3, 4]], [0, 1])
    teacher = np.array([[3.0, -3.0], [-1.0, 1.0]], dtype=np.float32)
    method = _HeadMethod(
        model, train, train, ["a", "b"], 1, Soft([[4, 5], [5, 6, 2]], teacher, 2.0)
    )
    cpu = torch.device("cpu")
    assert method.sizes() == [3, 2, 2, 3]
    with torch.no_grad():
        labelled, unlabeled = method.loss(model, [0, 1], cpu), method.loss(model, [2, 3], cpu)
        mixed = method.loss(model, [2, 0, 3, 1], cpu)
        x, mask = pad_rows(method.ids, [0, 1], 1, cpu)
        ce = torch.nn.functional.cross_entropy(
            model(x, mask).logits, torch.tensor([0, 1]), reduction="sum"
        )
        x, mask = pad_rows(method.ids, [2, 3], 1, cpu)
        kl = prediction_loss(model(x, mask).logits, torch.from_numpy(teacher), 2.0).sum()
    assert float(labelled) == pytest.approx(float(ce), rel=1e-5)
    assert float(unlabeled) == pytest.approx(float(kl), rel=1e-5)
    assert float(mixed) == pytest.approx(float(ce + kl), rel=1e-5)


def sentiment_task_with(
    task_heads: Path, tmp_path: Path, seed: int, name: str, distill: dict
) -> Path:
    """A tasks config of the fixture's sentiment task alone, named `name`, distilling with
    `distill` on 40 unlabeled lines written for it: the config's path."""
    rng = np.random.default_rng(seed)
    texts = tmp_path / "unlabeled.txt"
    texts.write_text("\n".join(" ".join(rng.choice(WORDS, size=4)) for _ in range(40)) + "\n")
    config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
    sentiment = config["tasks"]["sentiment"] | {
        "name": name,
        "distill": {"texts": str(texts)} | distill,
    }
    config |= {"out": str(tmp_path / "tasks"), "tasks": {"sentiment": sentiment}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_distilled_heads_learn_from_the_baselines_chosen_head(
    task_heads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`distill`: the student's sentiment heads also learn the baseline's chosen head's
    logits on unlabeled text. The baseline's report is required; where only its records are
    kept, its chosen head is trained again and checked against them; the teacher's logits
    are kept and reused, and so is every finished seed."""
    distill = {"limit": 30, "temperature": 2.0}
    path = sentiment_task_with(task_heads, tmp_path, 2, "vi-sentiment-distilled", distill)
    command = ["compress", "tasks", str(path)]
    capsys.readouterr()
    assert main(command) == 2
    assert "--baseline --task sentiment" in capsys.readouterr().err
    assert main([*command, "--baseline"]) == 0
    baseline = json.loads(
        (tmp_path / "tasks" / "baseline" / "sentiment" / "report.json").read_text()
    )
    chosen = tmp_path / "tasks" / "baseline" / "sentiment" / "runs"
    chosen = chosen / f"seed{baseline['best_seed']}-lr{baseline['learning_rate']:g}.pt"
    shutil.rmtree(chosen.parent)  # only the report is kept
    capsys.readouterr()
    assert main(command) == 0
    assert "training the baseline's seed" in capsys.readouterr().out
    assert chosen.is_file()  # trained again, and its choosing figure matched the record
    report = json.loads((tmp_path / "tasks" / "sentiment" / "report.json").read_text())
    assert report["distill"]["texts_used"] == 30
    assert report["distill"]["teacher"].endswith(
        f"seed {baseline['best_seed']} at {baseline['learning_rate']:g}"
    )
    assert all(run["distill"] == report["distill"] for run in report["runs"])
    with np.load(tmp_path / "tasks" / "sentiment" / "teacher.npz") as saved:
        assert saved["logits"].shape == (30, 2)
    sources = task_heads / "models" / "sources" / "vi-sentiment-distilled"
    try:
        source = json.loads((sources / "source.json").read_text())
        assert "distilled from" in source["provenance"]["method"]
        assert main(command) == 0
        out = capsys.readouterr().out
        assert out.count("done earlier") == 3
        assert "training the baseline's" not in out
    finally:
        shutil.rmtree(sources)
        shutil.rmtree(task_heads / "models" / "vi-sentiment-distilled")


def test_every_seed_of_the_baseline_can_teach_their_logits_averaged(
    task_heads: Path, tmp_path: Path
) -> None:
    """`teachers: seeds`: the baseline's heads of every seed at its chosen rate teach as one
    model, their logits averaged; the record names them and the ensemble's own dev figure."""
    heads = [EncoderClassifier(encoder(seed=s), ["a", "b"], "adapter", 2).eval() for s in (0, 1)]
    x, mask = torch.tensor([[2, 3, 4], [3, 4, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]])
    with torch.no_grad():
        each = [head(x, mask).logits for head in heads]
        assert torch.allclose(MeanLogits(heads)(x, mask).logits, (each[0] + each[1]) / 2)
    distill = {"limit": 30, "teachers": "seeds"}
    path = sentiment_task_with(task_heads, tmp_path, 3, "vi-sentiment-seeds", distill)
    sources = task_heads / "models" / "sources" / "vi-sentiment-seeds"
    try:
        assert main(["compress", "tasks", str(path), "--baseline"]) == 0
        assert main(["compress", "tasks", str(path)]) == 0
        baseline = json.loads(
            (tmp_path / "tasks" / "baseline" / "sentiment" / "report.json").read_text()
        )
        report = json.loads((tmp_path / "tasks" / "sentiment" / "report.json").read_text())
        assert report["distill"]["teachers"] == "seeds"
        assert report["distill"]["teacher"].endswith(
            f"seeds 1, 2 (their logits averaged) at {baseline['learning_rate']:g}"
        )
        assert 0 <= report["distill"]["teacher_choose_macro_f1"] <= 1
        with np.load(tmp_path / "tasks" / "sentiment" / "teacher.npz") as saved:
            assert saved["logits"].shape == (30, 2)
    finally:
        shutil.rmtree(sources, ignore_errors=True)
        shutil.rmtree(task_heads / "models" / "vi-sentiment-seeds", ignore_errors=True)


def test_a_tagger_distils_its_teacher_word_by_word() -> None:
    """Unlabeled sentences give T^2 * KL at each word's first token against the teacher's
    row for that word (a NaN row, a word the teacher's truncation cut, is skipped), averaged
    over words and counted once per sentence; labelled ones give the usual cross-entropy."""
    torch.manual_seed(0)
    model = TokenClassifier(encoder(), ["NOUN", "VERB"], 2).eval()
    train = Encoded([[0, 4, 5, 2]], [[IGNORE, 1, 0, IGNORE]], [[1, 2]])
    unlabeled = Encoded([[0, 4, 6, 7, 2], [0, 5, 2]], [[IGNORE] * 5, [IGNORE] * 3], [[1, 2], [1]])
    teacher = [np.array([[2.0, -2.0], [np.nan, np.nan]]), np.array([[-1.0, 1.0]])]
    soft = SoftTags(unlabeled, [t.astype(np.float32) for t in teacher], 2.0)
    method = _TaggerMethod(model, train, train, 1, lambda _: 0.0, soft)
    cpu = torch.device("cpu")
    assert method.sizes() == [4, 5, 3]
    with torch.no_grad():
        labelled, distilled = method.loss(model, [0], cpu), method.loss(model, [1, 2], cpu)
        mixed = method.loss(model, [2, 0, 1], cpu)
        x, mask = pad_rows(method.ids, [0, 1, 2], 1, cpu)
        out = model(x, mask).logits
        ce = torch.nn.functional.cross_entropy(out[0, [1, 2]], torch.tensor([1, 0])) * 1
        student = torch.stack([out[1, 1], out[2, 1]])  # the cut word is left out
        rows = torch.tensor([[2.0, -2.0], [-1.0, 1.0]])
        kl = prediction_loss(student, rows, 2.0).sum() / (2 / 2)
    assert float(labelled) == pytest.approx(float(ce), rel=1e-5)
    assert float(distilled) == pytest.approx(float(kl), rel=1e-4)
    assert float(mixed) == pytest.approx(float(ce + kl), rel=1e-4)


def test_unlabeled_text_is_split_into_words_as_the_tagging_sets_are() -> None:
    assert words_of("Habari, dunia! Covid-19 ") == ["Habari", ",", "dunia", "!", "Covid", "-", "19"]
    assert words_of("Đồng bằng sông Cửu Long.") == ["Đồng", "bằng", "sông", "Cửu", "Long", "."]


def pos_task_with(
    task_heads: Path, tmp_path: Path, seed: int, name: str, extra: dict
) -> tuple[Path, Path, list[str]]:
    """A tasks config of the fixture's POS task alone, named `name`, with `extra` settings and
    25 unlabeled lines written for it (`{texts}` in `extra` is their path): the config's path,
    the texts' path and the lines."""
    rng = np.random.default_rng(seed)
    texts = tmp_path / "unlabeled.txt"
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) + "." for _ in range(25)]
    texts.write_text("\n".join(lines) + "\n")
    config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
    settings = {k: v | {"texts": str(texts)} for k, v in extra.items()}
    pos = config["tasks"]["pos"] | {"name": name, "default": False} | settings
    config |= {"out": str(tmp_path / "tasks"), "tasks": {"pos": pos}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, texts, lines


def test_token_heads_distil_the_baselines_tags_on_unlabeled_sentences(
    task_heads: Path, tmp_path: Path
) -> None:
    """`distill` on a token task: the baseline's chosen POS head tags every word of the
    unlabeled lines (its rows kept in `teacher.npz`, one per word), and the student's heads
    learn them beside the labels."""
    distill = {"distill": {"limit": 20, "temperature": 2.0}}
    path, _, lines = pos_task_with(task_heads, tmp_path, 3, "vi-pos-distilled", distill)
    shutil.copytree(
        task_heads / "tasks" / "baseline" / "pos", tmp_path / "tasks" / "baseline" / "pos"
    )
    sources = task_heads / "models" / "sources" / "vi-pos-distilled"
    try:
        assert main(["compress", "tasks", str(path)]) == 0
        source = json.loads((sources / "source.json").read_text())
        assert "distilled from" in source["provenance"]["method"]
    finally:
        shutil.rmtree(sources, ignore_errors=True)
        shutil.rmtree(task_heads / "models" / "vi-pos-distilled", ignore_errors=True)
    report = json.loads((tmp_path / "tasks" / "pos" / "report.json").read_text())
    assert report["distill"]["texts_used"] == 20
    assert all(run["distill"] == report["distill"] for run in report["runs"])
    words = sum(len(words_of(line)) for line in lines[:20])
    with np.load(tmp_path / "tasks" / "pos" / "teacher.npz") as saved:
        assert saved["logits"].shape == (words, 2)  # a row per word, NOUN and INTJ
        assert np.isfinite(saved["logits"]).all()


def test_int8_row_sources_halve_the_student_and_rebuild_its_figures(
    compressed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`source_weights: int8-rows`: the packed student's matrices are int8 with a scale per
    row, and the figures in its sources are the rebuilt model's (checked by a rebuild)."""
    monkeypatch.setattr("training.weights.rows.MIN_VALUES", 1)  # the toy's matrices are tiny
    run = tmp_path / "run"
    shutil.copytree(compressed / "run", run)
    shutil.rmtree(next(run.glob("*-export")))
    config = yaml.safe_load((compressed / "compress.yaml").read_text())
    config |= {"out": str(run), "source_weights": "int8-rows"}
    config["bundle"] = config["bundle"] | {
        "out": str(tmp_path / "bundle"),
        "sources": str(tmp_path / "sources"),
    }
    (tmp_path / "compress.yaml").write_text(yaml.safe_dump(config))
    assert main(["compress", "run", str(tmp_path / "compress.yaml"), "--stage", "export"]) == 0
    stored = load_file(str(tmp_path / "sources" / "model.safetensors"))
    assert stored["encoder.embeddings.word_embeddings.weight"].dtype == torch.int8
    fp16 = (compressed / "models" / "sources" / "vi-topic" / "model.safetensors").stat().st_size
    assert (tmp_path / "sources" / "model.safetensors").stat().st_size < fp16
    assert main(["build", str(tmp_path / "sources"), "--out", str(tmp_path / "again")]) == 0


def test_the_family_table_marks_the_students_that_are_served() -> None:
    """A table's `served` field decides; tables made before it was recorded fall back to the
    small and tiny students, or the candidate a rule served in the tiny one's place."""
    admitted = {"small": {"served": False}, "fast-notask": {"served": True}, "tiny": {}}
    assert [n for n in admitted if served(n, admitted)] == ["fast-notask", "tiny"]
    older = {"small": {}, "tiny": {}, "tiny-notask": {}, "first-family/table": {}}
    assert [n for n in older if served(n, older)] == ["small", "tiny-notask"]


def test_a_token_task_can_distil_a_body_of_its_own(
    task_heads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`body` on a token task: the whole student with a linear tagger learns the baseline's
    tags of unlabeled lines beside the labels (resumable, its best epoch kept), the heads
    are trained on that body, and the sources hold it (`body` is `.`), int8 rows, with the
    figures of the model rebuilt from them. A second run reuses the body and every seed; a
    changed student does not resume the other body's checkpoint."""
    body = {"body": {"limit": 20, "epochs": 2, "batch_size": 8}}
    path, _, _ = pos_task_with(task_heads, tmp_path, 4, "vi-pos-body", body)
    shutil.copytree(
        task_heads / "tasks" / "baseline" / "pos", tmp_path / "tasks" / "baseline" / "pos"
    )
    sources = task_heads / "models" / "sources" / "vi-pos-body"
    student = task_heads / "models" / "sources" / "vi-topic"
    try:
        assert main(["compress", "tasks", str(path)]) == 0  # packed, built, rebuild checked
        source = json.loads((sources / "source.json").read_text())
        assert source["body"] == "."
        assert "its body distilled for the task from" in source["provenance"]["method"]
        assert {"f1", "trained_body"} <= set(source["evaluation"][0])
        assert (sources / "tokenizer.json").read_bytes() == (
            student / "tokenizer.json"
        ).read_bytes()
        packed = load_file(str(sources / "model.safetensors"))
        original = load_file(str(student / "model.safetensors"))
        key = "encoder.encoder.layer.0.attention.self.query.weight"
        assert not torch.equal(packed[key].float(), original[key].float())  # trained whole
        assert not any(".adapter." in k or k.startswith("classifier.") for k in packed)
        assert load_bundle(task_heads / "models" / "vi-pos-body").manifest.default is False
        report = json.loads((tmp_path / "tasks" / "pos" / "report.json").read_text())
        assert report["body"]["teacher"]["texts_used"] == 20
        body = json.loads((tmp_path / "tasks" / "pos" / "body" / "body.json").read_text())
        assert [h["epoch"] for h in body["history"]] == [1, 2]
        assert (tmp_path / "tasks" / "pos" / "body" / CHECKPOINT).is_file()  # resumable
        assert all(run["encoder_id"] != body_digest(student) for run in report["runs"])
        first = [run["choose_f1"] for run in report["runs"]]
        assert main(["compress", "tasks", str(path)]) == 0
        again = json.loads((tmp_path / "tasks" / "pos" / "report.json").read_text())
        assert [run["choose_f1"] for run in again["runs"]] == first
        (student / "note.txt").write_text("another student")
        capsys.readouterr()
        try:
            assert main(["compress", "tasks", str(path)]) == 2
        finally:
            (student / "note.txt").unlink()
        assert "was made with other settings" in capsys.readouterr().err
    finally:
        shutil.rmtree(sources, ignore_errors=True)
        shutil.rmtree(task_heads / "models" / "vi-pos-body", ignore_errors=True)


@contextmanager
def packed_alone(task_heads: Path, tmp_path: Path, task: str, spec: dict) -> Iterator[Path]:
    """The fixture's tasks config with `task` alone (as `spec`, which names its bundle), run
    into `tmp_path`: its sources, removed with its bundle afterwards."""
    config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
    config |= {"out": str(tmp_path / "tasks"), "tasks": {task: spec}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(config))
    sources = task_heads / "models" / "sources" / spec["name"]
    try:
        assert main(["compress", "tasks", str(path)]) == 0
        yield sources
    finally:
        shutil.rmtree(sources, ignore_errors=True)
        shutil.rmtree(task_heads / "models" / spec["name"], ignore_errors=True)


def test_a_token_tasks_body_can_be_trained_on_its_labels_alone(
    task_heads: Path, tmp_path: Path
) -> None:
    """`body` without texts: no teacher, so no baseline report is needed; the body is
    trained whole on the labelled sentences and carries the heads."""
    config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
    ner = config["tasks"]["ner"] | {"name": "vi-ner-body", "body": {"epochs": 1, "batch_size": 8}}
    with packed_alone(task_heads, tmp_path, "ner", ner) as sources:
        source = json.loads((sources / "source.json").read_text())
        assert source["body"] == "."
        assert "its body trained whole for the task on the labels" in source["provenance"]["method"]
    report = json.loads((tmp_path / "tasks" / "ner" / "report.json").read_text())
    assert report["body"]["teacher"] is None
    body = json.loads((tmp_path / "tasks" / "ner" / "body" / "body.json").read_text())
    assert [h["epoch"] for h in body["history"]] == [1]
    assert not (tmp_path / "tasks" / "baseline").exists()


def test_a_text_task_can_train_a_body_of_its_own_and_name_its_columns(
    task_heads: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`body` on a text task: the whole student with a classifier learns the labelled rows
    (read from the columns the task names) and carries the heads; the sources hold it and
    build a classification bundle served only when named. `ffn` cuts the body first (a
    width the student lacks is refused). Heads trained later on that model keep its body."""
    data = tmp_path / "topics"
    data.mkdir()
    for split in ("train", "dev", "test"):
        rows = (task_heads / "tasks-data" / "sa" / f"{split}.tsv").read_text().splitlines()
        (data / f"{split}.tsv").write_text("\n".join(["sentence\tcategory", *rows[1:]]) + "\n")
    topic = {"data": str(data), "kind": "sequence", "text_column": "sentence",
             "label_column": "category", "name": "vi-topic-own",
             "body": {"epochs": 2, "batch_size": 8, "ffn": 24}}  # fmt: skip
    with packed_alone(task_heads, tmp_path, "topic", topic) as sources:
        source = json.loads((sources / "source.json").read_text())
        assert source["body"] == "."
        assert "its body with its FFN cut to 24 trained whole" in source["provenance"]["method"]
        shape = json.loads((sources / "encoder-config.json").read_text())
        assert shape["intermediate_size"] == 24  # the student's is wider
        manifest = load_bundle(task_heads / "models" / "vi-topic-own").manifest
        assert (manifest.task, manifest.default) == ("classification", False)
        assert sorted(manifest.labels) == ["negative", "positive"]
        # new heads on that task model (its own head left out) are packed with its body:
        # under the same name they replace it, so they cannot name it as their body
        served = tmp_path / "served"
        shutil.copytree(sources, served)
        again = {k: v for k, v in topic.items() if k != "body"}
        config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
        config |= {
            "student": str(served),
            "out": str(tmp_path / "heads"),
            "tasks": {"topic": again},
        }
        (tmp_path / "heads.yaml").write_text(yaml.safe_dump(config))
        assert main(["compress", "tasks", str(tmp_path / "heads.yaml")]) == 0
        source = json.loads((sources / "source.json").read_text())
        assert source["body"] == "."
        assert "on the body of served (trained for its task)" in source["provenance"]["method"]
        before, after = (load_file(str(d / "model.safetensors")) for d in (served, sources))
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert load_bundle(task_heads / "models" / "vi-topic-own").manifest.task == "classification"
    report = json.loads((tmp_path / "tasks" / "topic" / "report.json").read_text())
    assert report["body"]["teacher"] is None
    body = json.loads((tmp_path / "tasks" / "topic" / "body" / "body.json").read_text())
    assert [h["epoch"] for h in body["history"]] == [1, 2]
    assert "dev_macro_f1" in body["history"][0]
    assert body["ffn"] == 24
    topic["body"]["ffn"] = 10_000
    config = yaml.safe_load((task_heads / "tasks.yaml").read_text())
    config |= {"out": str(tmp_path / "wider"), "tasks": {"topic": topic}}
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["compress", "tasks", str(tmp_path / "wider.yaml")]) == 2
    assert "body ffn 10000 is wider than the student's 32" in capsys.readouterr().err
