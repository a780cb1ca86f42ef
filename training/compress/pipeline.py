"""`python -m training compress run CONFIG [--stage S ...]`: the compression pipeline.

    1-layers    12 -> 6 layers (stride init), distilled from the teacher
    2-prune     FFN 1536 -> 1024 by first-order importance on validation text
    3-truncate  hidden 384 -> k (first k dims), distilled from stage 2 (k = 384: kept as is)
    4-task      task-aware distillation (TinyBERT's second phase): the fine-tuned uncompressed
                baseline (e5-small + its best topic head by dev) teaches the whole student its
                topic distribution and hidden states on the unlabeled text (skipped without
                `task_distill` settings)
    5-vocab     vocabulary trimmed to the language's top-N pieces (training/vocab)
    6-heads     task heads on the uncompressed teacher and on every stage, over seeds
    7-export    the final student's best head (by dev) as sources + a parity-checked bundle

Every stage writes `<out>/<n>-<stage>/` (model directory, `report.json` with parameters, size
on disk, validation loss and time); a finished stage (its report exists) is skipped, and a
distillation interrupted mid-way resumes from its checkpoint. A stage that leaves the model
as it was records `same_as` instead of a second copy. With `base`, another run of the language
lends what the settings share (`from_base`): the baseline's heads, the layers stage, the prune
stage, with their head runs."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

from training.compress import MODEL_STAGES, SHARED_STAGES, STAGES
from training.compress.config import CompressConfig, TaskConfig
from training.compress.distill import (
    BEST,
    Projection,
    distill,
    ffn_importance,
    most_important,
    validate,
)
from training.compress.encoders import load_encoder
from training.compress.head import EncoderClassifier, HeadSettings, train_head
from training.compress.head import predict as predict_ids
from training.compress.reports import (
    REPORT,
    HeadsReport,
    KeptReport,
    LayersReport,
    ModelReport,
    Report,
    Shape,
    parsed,
    read_report,
    write_report,
)
from training.compress.surgery import parameters, prune_ffn, reduce_layers, truncate_hidden
from training.data import read_lines, read_table
from training.evaluate.metrics import scores
from training.loop import processes
from training.settings_files import validated
from training.vocab.trim import split_lines, trim_model
from training.weights.resolve import resolve_model

# what each result a `base` run can lend depends on: the uncompressed baseline's topic heads,
# then the shared stages, each needing the settings of the one before it too
REUSE_KEYS: dict[str, tuple[str, ...]] = {"uncompressed": ("teacher", "max_length", "seed", "task")}
REUSE_KEYS["layers"] = (*REUSE_KEYS["uncompressed"], "corpus", "val_fraction", "max_texts")
REUSE_KEYS["layers"] += ("layers", "layer_init", "distill")
REUSE_KEYS["prune"] = (*REUSE_KEYS["layers"], "ffn", "importance_texts")
assert tuple(REUSE_KEYS)[1:] == SHARED_STAGES


def stage_dir(config: CompressConfig, stage: str) -> Path:
    """Where this run writes `stage`; `found` says where its finished results are."""
    return config.out / f"{STAGES.index(stage) + 1}-{stage}"


def found(config: CompressConfig, stage: str) -> Path:
    """The folder holding `stage`'s results: this run's, else (for a shared stage it takes
    from its base) the base run's, or where that run found it: a candidate based on a
    candidate reaches the stages the first one borrowed."""
    own = stage_dir(config, stage)
    seen = {config.out.resolve()}
    while not (own / REPORT).is_file() and stage in from_base(config):
        config = base_config(config)
        if config.out.resolve() in seen:
            raise ValueError(f"the bases of this run lead back to {config.out}")
        seen.add(config.out.resolve())
        own = stage_dir(config, stage)
    return own


def base_config(config: CompressConfig) -> CompressConfig:
    """The settings the base run was run with (its `compress-config.json`)."""
    if config.base is None:
        raise ValueError("this run has no base")
    saved = config.base / "compress-config.json"
    if not saved.is_file():
        raise ValueError(f"base {config.base} is not a compression run (no compress-config.json)")
    return validated(CompressConfig, json.loads(saved.read_text()), saved)


def from_base(config: CompressConfig) -> tuple[str, ...]:
    """What this run takes from its base run (none without one): the baseline's heads when
    the teacher, task and head settings match, then each shared stage whose settings match
    too. A candidate of another depth takes the heads only; one of another FFN width, the
    heads and the layers stage. A base sharing nothing is refused."""
    if config.base is None:
        return ()
    # both through the model: settings added since the base ran compare as their defaults
    theirs = base_config(config).to_json()
    ours = config.to_json()
    for settings in (theirs, ours):  # which stages get heads is each run's own affair
        settings.get("head", {}).pop("skip", None)
    differing = [key for key in (*REUSE_KEYS["prune"], "head") if theirs.get(key) != ours.get(key)]
    if {"head", *REUSE_KEYS["uncompressed"]} & set(differing):
        raise ValueError(f"base {config.base} was run with other settings: {differing}")
    return tuple(name for name, keys in REUSE_KEYS.items() if not set(keys) & set(differing))


def task_labels(task: TaskConfig) -> list[str]:
    """The configured labels, else `labels.txt` beside the splits, else the train labels."""
    if task.labels:
        return list(task.labels)
    listed = task.data / "labels.txt"
    if listed.is_file():
        return read_lines(listed)
    table = read_table(task.data / "train.tsv", task.text_column, task.label_column)
    return sorted(set(table.labels))


ReportT = TypeVar("ReportT", bound=Report)


def shape(model: BertModel) -> dict[str, int]:
    """Parameters and the sizes the compression stages change."""
    return {
        "parameters": parameters(model),
        "layers": model.config.num_hidden_layers,
        "hidden": model.config.hidden_size,
        "heads": model.config.num_attention_heads,
        "ffn": model.config.intermediate_size,
        "vocabulary": model.config.vocab_size,
    }


def size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


class Pipeline:
    def __init__(self, config: CompressConfig) -> None:
        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        self.teacher_dir = Path(resolve_model(config.teacher))
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.teacher_dir))
        lines = read_lines(config.corpus)
        train, val = split_lines(lines, config.val_fraction, config.seed)
        self.vocab_texts = train  # pieces are counted on all of it, whatever distillation uses
        if config.max_texts is not None:
            train = train[: config.max_texts]
        self.train_texts, self.val_texts = train, val
        self._ids: dict[str, tuple[list[list[int]], list[list[int]]]] = {}
        # under `accelerate launch` / torchrun every process runs every stage (the trainings
        # split their batches); only the main one writes, the others wait for its files
        self.processes = processes()

    @property
    def main(self) -> bool:
        return bool(self.processes.is_main_process)

    def _written(self) -> None:
        """Wait until the main process has written what the others read next."""
        self.processes.wait_for_everyone()

    def ids(self, tokenizer: Any) -> tuple[list[list[int]], list[list[int]]]:
        key = str(tokenizer.name_or_path)
        if key not in self._ids:
            encode = lambda texts: [  # noqa: E731
                list(x)
                for x in tokenizer(texts, truncation=True, max_length=self.config.max_length)[
                    "input_ids"
                ]
            ]
            self._ids[key] = (encode(self.train_texts), encode(self.val_texts))
        return self._ids[key]

    def run(self, stages: list[str] | None = None) -> dict[str, Report]:
        from_base(self.config)  # a base sharing nothing is refused before any work
        self.config.out.mkdir(parents=True, exist_ok=True)
        if self.main:
            (self.config.out / "compress-config.json").write_text(
                json.dumps(self.config.to_json(), indent=2)
            )
        reports: dict[str, Report] = {}
        for stage in stages or list(STAGES):
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
            folder = stage_dir(self.config, stage)
            done = found(self.config, stage)
            if (done / REPORT).is_file():
                print(f"{stage}: done earlier ({done / REPORT})", flush=True)
                reports[stage] = read_report(done, stage)
                continue
            previous = STAGES[STAGES.index(stage) - 1] if stage != "layers" else None
            if previous and previous in MODEL_STAGES and not self._done(previous):
                raise ValueError(f"stage {stage} needs stage {previous} first")
            print(f"{stage}: starting", flush=True)
            started = time.perf_counter()
            folder.mkdir(parents=True, exist_ok=True)
            data = getattr(self, f"_{stage}")(folder)
            data["seconds"] = round(time.perf_counter() - started, 1)
            if self.main:
                reports[stage] = write_report(folder, stage, data)
            else:
                reports[stage] = parsed(stage, data, f"the {stage} stage")
            self._written()
        return reports

    def _done(self, stage: str) -> bool:
        return (found(self.config, stage) / REPORT).is_file()

    def report(self, stage: str, kind: type[ReportT]) -> ReportT:
        """A finished stage's report (this run's, or a shared stage's in the base run)."""
        report = read_report(found(self.config, stage), stage)
        if not isinstance(report, kind):
            raise ValueError(f"the {stage} stage's report is a {type(report).__name__}")
        return report

    def encoder_dir(self, stage: str) -> Path:
        """The model a stage ended with, following `same_as` to the stage that made it."""
        while isinstance(report := self.report(stage, ModelReport), KeptReport):
            stage = report.same_as
        return found(self.config, stage) / "model"

    def _save(self, model: BertModel, folder: Path, tokenizer: Any = None) -> dict[str, Any]:
        if self.main:
            model.save_pretrained(str(folder / "model"), safe_serialization=True)
            (tokenizer or self.tokenizer).save_pretrained(str(folder / "model"))
        self._written()
        return {"size_bytes": size_on_disk(folder / "model")} | shape(model)

    def _layers(self, folder: Path) -> dict[str, Any]:
        teacher = load_encoder(self.teacher_dir)
        student, chosen = reduce_layers(teacher, self.config.layers, self.config.layer_init)
        train, val = self.ids(self.tokenizer)
        pad = self.tokenizer.pad_token_id
        result = distill(student, teacher, train, val, pad, chosen, self.config.distill, folder)
        described = {"teacher": shape(teacher), "teacher_layers": chosen}
        return described | {"distillation": result} | self._save(student, folder)

    def _prune(self, folder: Path) -> dict[str, Any]:
        layers_report = self.report("layers", LayersReport)
        model = load_encoder(self.encoder_dir("layers"))
        teacher = load_encoder(self.teacher_dir)
        _, val = self.ids(self.tokenizer)
        chosen = layers_report.teacher_layers
        pad = self.tokenizer.pad_token_id
        sample = val[: self.config.importance_texts]
        importance = ffn_importance(model, teacher, sample, pad, chosen, self.config.distill)
        keep = most_important(importance, self.config.ffn)
        pruned = prune_ffn(model, keep)
        before = validate(model, teacher, val, pad, chosen, self.config.distill)
        after = validate(pruned, teacher, val, pad, chosen, self.config.distill)
        if self.main:
            torch.save({"importance": importance, "kept": keep}, folder / "importance.pt")
        return {
            "importance_texts": len(sample),
            "val_before": before,
            "val_after": after,
        } | self._save(pruned, folder)

    def _truncate(self, folder: Path) -> dict[str, Any]:
        teacher = load_encoder(self.encoder_dir("prune"))
        if self.config.hidden == teacher.config.hidden_size:
            size = self.report("prune", ModelReport).size_bytes
            return {"same_as": "prune", "size_bytes": size} | shape(teacher)
        student = truncate_hidden(teacher, self.config.hidden, self.config.head_layout)
        train, val = self.ids(self.tokenizer)
        pad = self.tokenizer.pad_token_id
        identity = list(range(teacher.config.num_hidden_layers))
        settings = self.config.second_distill
        result = distill(student, teacher, train, val, pad, identity, settings, folder)
        return {"teacher": "stage 2 (prune)", "distillation": result} | self._save(student, folder)

    def _task(self, folder: Path) -> dict[str, Any]:
        settings = self.config.task_distill
        source = self.encoder_dir("truncate")
        if settings is None:
            kept = self.report("truncate", ModelReport)
            return {"same_as": "truncate", "skipped": "no task_distill settings"} | kept.model_dump(
                include={"size_bytes", *Shape.model_fields}
            )
        labels, data = self.labels(), self.task_data()
        head = self.config.head
        baseline, head_file = self.baseline_head(labels, data)
        teacher = EncoderClassifier(
            load_encoder(self.teacher_dir), labels, head.kind, head.baseline_reduction
        )
        teacher.load_state_dict(torch.load(head_file, map_location="cpu"))
        student = load_encoder(source)
        torch.manual_seed(self.config.seed)  # the classifier's initial weights, when not copied
        classifier = torch.nn.Linear(student.config.hidden_size, len(labels))
        k, width = student.config.hidden_size, teacher.classifier.in_features
        start, start_map = "fresh", None
        if k == width:
            classifier.load_state_dict(teacher.classifier.state_dict())
            start = "copied"
        elif self.config.task_start == "mapped":
            mapping = self._truncation_map(k, width)
            with torch.no_grad():
                classifier.weight.copy_(teacher.classifier.weight @ mapping)
                classifier.bias.copy_(teacher.classifier.bias)
            start = "mapped"
            start_map = mapping if settings.narrow == "project" else None
        train, val = self.task_ids()
        pad = self.tokenizer.pad_token_id
        chosen = self.report("layers", LayersReport).teacher_layers
        heads = (classifier, teacher.classifier)
        result = distill(
            student, teacher.encoder, train, val, pad, chosen, settings, folder, heads, start_map
        )
        if self.main:
            torch.save(classifier.state_dict(), folder / "classifier.pt")
        direct = EncoderClassifier(student, labels, "full")
        direct.classifier.load_state_dict(classifier.state_dict())
        own = {}
        for split in ("dev", "test"):
            texts, gold = data[split]
            ids = [
                list(x)
                for x in self.tokenizer(texts, truncation=True, max_length=self.config.max_length)[
                    "input_ids"
                ]
            ]
            predicted = predict_ids(direct, ids, pad)
            own[split] = scores(np.array(gold), predicted, labels)
        return {
            "teacher": "uncompressed e5-small + its best topic head by dev",
            "teacher_head": {
                "file": str(head_file),
                "seed": baseline["best_seed"],
                "learning_rate": baseline["learning_rate"],
            },
            "distillation": result,
            "task_texts": len(train),
            "classifier_start": start,
            "distilled_classifier": {  # the student's own classifier: no label trained it
                f"{split}_{key}": own[split][key]
                for split in ("dev", "test")
                for key in ("accuracy", "macro_f1")
            },
        } | self._save(student, folder)

    def _truncation_map(self, k: int, width: int) -> torch.Tensor:
        """The map from the student's k dimensions to the teacher's width that the truncation's
        distillation learned (its best weights), or first-k where it compared without one."""
        best = found(self.config, "truncate") / BEST
        if best.is_file():
            state = torch.load(best, map_location="cpu")
            if "projection.map.weight" in state:
                return state["projection.map.weight"]
        return Projection(k, width).map.weight.detach()

    def task_ids(self) -> tuple[list[list[int]], list[list[int]]]:
        """The task distillation's texts: the distillation texts, or `task_texts` of the
        language's training text (the same held-out text either way)."""
        train, val = self.ids(self.tokenizer)
        count = self.config.task_texts
        if count is None or count == len(train):
            return train, val
        texts = self.vocab_texts[:count]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.config.max_length)
        return [list(x) for x in encoded["input_ids"]], val

    def baseline_head(
        self, labels: list[str], data: dict[str, tuple[list[str], list[int]]]
    ) -> tuple[dict[str, Any], Path]:
        """The uncompressed baseline's heads (the heads stage's own runs, trained here first
        when needed) and the file of its best one by dev: the task distillation's teacher."""
        folder = stage_dir(self.config, "heads")
        reduction = self.config.head.baseline_reduction
        result = self.heads_for("uncompressed", self.teacher_dir, reduction, labels, data, folder)
        seed, rate = result["best_seed"], result["learning_rate"]
        return result, self._head_file(folder, "uncompressed", seed, rate)

    def _vocab(self, folder: Path) -> dict[str, Any]:
        source = self.encoder_dir("task")
        trim: dict[str, Any] = {}  # the report is the main process's
        if self.main:
            trim = trim_model(
                source, folder / "model", self.vocab_texts, self.val_texts, self.config.vocab_size
            )
        self._written()
        model = load_encoder(folder / "model")
        return {"trim": trim, "size_bytes": size_on_disk(folder / "model")} | shape(model)

    def task_data(self) -> dict[str, tuple[list[str], list[int]]]:
        task = self.config.task
        labels = self.labels()
        data = {}
        for split in ("train", "dev", "test"):
            table = read_table(task.data / f"{split}.tsv", task.text_column, task.label_column)
            unknown = sorted(set(table.labels) - set(labels))
            if unknown:
                raise ValueError(f"{split}.tsv has labels {unknown} not in {labels}")
            data[split] = (table.texts, [labels.index(y) for y in table.labels])
        return data

    def labels(self) -> list[str]:
        return task_labels(self.config.task)

    def head_models(self) -> list[tuple[str, Path, int]]:
        """(name, encoder directory, adapter reduction) for the baseline and every stage that
        made a model of its own; students narrower than the teacher take the small reduction."""
        head = self.config.head
        models = [("uncompressed", self.teacher_dir, head.baseline_reduction)]
        width = self.report("layers", LayersReport).teacher.hidden
        for stage in MODEL_STAGES:
            if stage in head.skip or not self._done(stage):
                continue
            report = self.report(stage, ModelReport)
            if not isinstance(report, KeptReport):
                narrow = report.hidden < width
                reduction = head.reduction if narrow else head.baseline_reduction
                models.append((stage, self.encoder_dir(stage), reduction))
        return models

    def _heads(self, folder: Path) -> dict[str, Any]:
        labels = self.labels()
        data = self.task_data()
        results = {}
        for name, path, reduction in self.head_models():
            results[name] = self.heads_for(name, path, reduction, labels, data, folder)
        return {"labels": labels, "results": results}

    def heads_for(
        self,
        name: str,
        path: Path,
        reduction: int,
        labels: list[str],
        data: dict[str, tuple[list[str], list[int]]],
        folder: Path,
    ) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        encoder = load_encoder(path)

        def encode(texts: list[str]) -> list[list[int]]:
            out = tokenizer(texts, truncation=True, max_length=self.config.max_length)
            return [list(x) for x in out["input_ids"]]

        split = {k: (encode(v[0]), v[1]) for k, v in data.items()}
        head = self.config.head
        pad = tokenizer.pad_token_id
        seeds = head.seeds_for(name)
        rates = head.learning_rates or [head.learning_rate]

        def run(seed: int, rate: float) -> dict[str, Any]:
            return self._head_run(name, encoder, reduction, labels, split, seed, rate, folder, pad)

        search = {rate: run(seeds[0], rate) for rate in rates}  # chosen on dev, first wins a tie
        rate = max(rates, key=lambda r: search[r]["dev_macro_f1"])
        runs = [search[rate]] + [run(seed, rate) for seed in seeds[1:]]
        best = max(runs, key=lambda r: r["dev_macro_f1"])  # the first wins a tie
        if name == "vocab":  # the final student: its best head (by dev) is exported
            chosen = self._head_file(folder, name, best["seed"], rate)
            if self.main:
                shutil.copyfile(chosen, folder / "final-head.pt")
        lengths = [len(x) for x in split["test"][0]]

        def spread(key: str) -> dict[str, float]:
            values = np.array([r[key] for r in runs])
            return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)}

        return {
            "encoder": str(path),
            "encoder_parameters": parameters(encoder),
            "head_kind": head.kind,
            "reduction": reduction,
            "trainable_parameters": runs[0]["trainable_parameters"],
            "test_accuracy": spread("test_accuracy"),
            "test_macro_f1": spread("test_macro_f1"),
            "dev_macro_f1": spread("dev_macro_f1"),
            "best_seed": best["seed"],
            "exported_seed": best["seed"] if name == "vocab" else None,
            "learning_rate": rate,
            "learning_rate_search": {str(r): search[r]["dev_macro_f1"] for r in rates},
            "tokens_per_text": round(float(np.mean(lengths)), 2),
            "runs": runs,
        }

    @staticmethod
    def _head_file(folder: Path, name: str, seed: int, rate: float, suffix: str = ".pt") -> Path:
        return folder / "runs" / f"{name}-seed{seed}-lr{rate:g}{suffix}"

    def _head_run(
        self,
        name: str,
        encoder: BertModel,
        reduction: int,
        labels: list[str],
        split: dict[str, tuple[list[list[int]], list[int]]],
        seed: int,
        rate: float,
        folder: Path,
        pad_id: int,
    ) -> dict[str, Any]:
        """One seed's head, or its saved report (this run's, or for the baseline and the shared
        stages the base run's): a stopped heads stage resumes per seed."""
        saved = self._head_file(folder, name, seed, rate, ".json")
        head = self.config.head
        settings = HeadSettings(head.kind, reduction, rate, head.batch_size, head.epochs, seed)
        base = self.config.base
        reused = name in from_base(self.config)
        if self.main and not saved.is_file() and reused:
            assert base is not None
            theirs = base / folder.name / saved.relative_to(folder)
            for suffix in (".json", ".pt"):
                if theirs.with_suffix(suffix).is_file():
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(theirs.with_suffix(suffix), saved.with_suffix(suffix))
        self._written()
        if saved.is_file():
            earlier = json.loads(saved.read_text())
            if earlier.get("settings") == asdict(settings):
                print(f"{name} seed {seed} lr {rate:g}: done earlier ({saved})", flush=True)
                return earlier
        model, report = train_head(encoder, labels, split["train"], split["dev"], pad_id, settings)
        predicted = predict_ids(model, split["test"][0], pad_id)
        test = scores(np.array(split["test"][1]), predicted, labels)
        report |= {
            "settings": asdict(settings),
            "test_accuracy": test["accuracy"],
            "test_macro_f1": test["macro_f1"],
        }
        if self.main:
            saved.parent.mkdir(parents=True, exist_ok=True)
            if name in ("uncompressed", "vocab"):  # the task distillation's teacher; the served
                torch.save(model.state_dict(), self._head_file(folder, name, seed, rate))
            saved.write_text(json.dumps(report, indent=2))
            shown = ("seed", "best_epoch", "dev_macro_f1", "test_accuracy", "test_macro_f1")
            line = {"model": name, "learning_rate": rate} | {k: report[k] for k in shown}
            print(json.dumps(line), flush=True)
        self._written()
        return report

    def _export(self, folder: Path) -> dict[str, Any]:
        from training.compress.package import Student, build, pack

        head_file = stage_dir(self.config, "heads") / "final-head.pt"
        if not head_file.is_file():
            raise ValueError(f"{head_file} is missing: run the heads stage on the final student")
        heads = read_report(stage_dir(self.config, "heads"), "heads")
        assert isinstance(heads, HeadsReport)
        bundle = self.config.bundle
        assert bundle is not None
        assert bundle.sources is not None
        assert bundle.out is not None
        built: dict[str, Any] = {"sources": str(bundle.sources)}
        if self.main:
            stages = {stage: self.report(stage, ModelReport) for stage in MODEL_STAGES}
            test = self.task_data()["test"]
            student = Student(self.encoder_dir("vocab"), stages, head_file, heads)
            pack(self.config, student, test, bundle.sources)
            built |= build(bundle.sources, bundle.out, record=True)
        self._written()
        return built
