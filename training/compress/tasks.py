"""`python -m training compress tasks CONFIG`: heads for a language's other tasks (binary
sentiment, POS, NER) on the student that serves it, trained with the topic heads' procedure.

The student is read from its committed sources (`models/sources/<lang>-topic`), so the same
command re-trains every head on whichever student is served. Per task: each learning rate's
seed-1 head is scored on the choosing split, the best rate is kept for the other seeds, the
seed with the best choosing score is packed; the report split is scored once per seed. The
choosing split is dev, or (`holdout`, for NER whose test split has no labels) a slice of train,
and then dev is the report split. Each task's sources hold only its head (adapters and
classifier, fp16) and name the student as their body: one body, many small heads.

A task may also `distill`: its student heads then learn, beside the labels, the baseline's
head's distribution on unlabeled text of the language, per text or (token tasks) per word,
the first sub-word on either side, which sidesteps the two tokenizers' different pieces (the
baseline's report must exist: `--baseline` first; its chosen head is the teacher, re-trained
and checked against its record when only the record is kept). A few hundred labelled rows are
all a head otherwise sees; the teacher's predictions on thousands of sentences are what the
small body lacks."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file, save_file
from transformers import BertModel

from training.compress.distill import most_important
from training.compress.encoders import (
    ENCODER_CONFIG,
    WEIGHTS,
    load_baseline,
    load_encoder,
    load_student,
)
from training.compress.head import (
    AdaptedHead,
    BodyRun,
    EncoderClassifier,
    HeadSettings,
    MeanLogits,
    Soft,
    logits,
    train_head,
)
from training.compress.head import predict as predict_texts
from training.compress.package import TOKENIZER_FILES
from training.compress.surgery import ffn_contribution, prune_ffn
from training.compress.tagger import (
    Sentences,
    SoftTags,
    TokenClassifier,
    encode,
    encode_words,
    predict,
    read_conll,
    train_tagger,
    word_logits,
    word_scores,
    words_of,
)
from training.data import read_table
from training.evaluate.metrics import scores
from training.loop import processes
from training.settings_files import Settings
from training.sources import (
    TaskHeadSources,
    body_digest,
    body_field,
    read_sources,
    write_sources,
)
from training.weights.rows import compact, fp16

HEAD = "head.safetensors"  # the task head: adapters and classifier (the body is the student)


class TaskHeads(Settings):
    reduction: int | None = Field(default=None, ge=1)  # default: 2 below 384 wide, else 16
    learning_rates: list[float] = Field(default_factory=lambda: [1e-3, 3e-3], min_length=1)
    batch_size: int = Field(default=16, ge=1)
    epochs: int = Field(default=20, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)


class HeadDistillation(Settings):
    """The baseline's head as a teacher on unlabeled text (token tasks: its tags of each
    line's words, split as `words_of` does)."""

    texts: Path  # one text per line
    limit: int = Field(default=5000, ge=1)  # its first lines
    temperature: float = Field(default=2.0, gt=0)
    # which of the baseline's heads teach: the one chosen on dev, or every seed's at the chosen
    # rate with their logits averaged (an ensemble: steadier than any one of its seeds)
    teachers: Literal["chosen", "seeds"] = "chosen"


class BodyDistillation(HeadDistillation):
    """Task-aware distillation of the body (TinyBERT's second phase): the whole student with
    a classifier (a linear tagger for a token task) learns the baseline head's distribution
    on unlabeled text (per text, or per word) beside the labels, and its encoder carries the
    task's heads. A few hundred labelled rows cannot teach a small body what the task needs;
    the teacher's predictions on thousands of sentences can. The task then has a body of its
    own, packed with its head, instead of sharing the topic student's. Without `texts`, the
    body is trained whole on the labels alone (no teacher: where labelled rows are many)."""

    texts: Path | None = None  # type: ignore[assignment]
    limit: int = Field(default=100_000, ge=1)
    epochs: int = Field(default=3, ge=1)
    learning_rate: float = Field(default=1e-4, gt=0, lt=1)
    batch_size: int = Field(default=32, ge=1)
    # the student's FFN cut to this many neurons per layer before the body trains (those that
    # contribute most on the task's train texts): a faster body than the student, repaired
    # by this training; None keeps the student's shape
    ffn: int | None = Field(default=None, ge=1)


class TaskSpec(Settings):
    data: Path  # train.tsv, dev.tsv and (optionally) test.tsv
    kind: Literal["sequence", "tokens"]
    text_column: str = "text"  # sequence tasks: the columns of their .tsv files
    label_column: str = "label"
    scheme: Literal["tags", "iob2"] | None = None  # tokens only
    labels: list[str] | None = None  # default: the sorted train labels
    holdout: float = Field(default=0.0, ge=0.0, lt=0.5)  # share of train to choose on
    name: str | None = None  # the bundle; default <language>-<task>
    default: bool = False  # answers for its language without being named
    min_variant_agreement: float = Field(default=0.85, ge=0.0, le=1.0)
    head: TaskHeads | None = None  # this task's own settings (default: the config's)
    distill: HeadDistillation | None = None  # the student's heads
    body: BodyDistillation | None = None  # a body of its own, trained for the task


class TasksConfig(Settings):
    language: str
    student: Path  # a compressed student's sources
    out: Path
    # the uncompressed model the heads are compared with (`--baseline`: the same heads
    # trained on it into <out>/baseline, reported beside the student's, never packed)
    baseline: str | None = "e5-small"
    tasks: dict[str, TaskSpec] = Field(min_length=1)
    head: TaskHeads = Field(default_factory=TaskHeads)
    max_length: int = Field(default=128, ge=8)
    sources: Path = Path("models/sources")  # where each task's sources are written
    models: Path = Path("models")  # where its bundle is built
    threads: int = Field(default=0, ge=0)


Split = tuple[Any, Any]  # (inputs, gold) of one split


class TaskRun:
    """One task's heads on the student: data, splits, runs per seed (resumable), packing."""

    def __init__(
        self,
        config: TasksConfig,
        task: str,
        encoder: tuple[str, str, BertModel, Any],
        folder: Path,
    ):
        """`encoder`: (its name, what identifies its weights, the encoder, its tokenizer)."""
        self.config, self.task, self.spec = config, task, config.tasks[task]
        self.encoder_name, self.encoder_id, self.encoder, self.tokenizer = encoder
        self.folder = folder
        spec = self.spec
        if spec.kind == "tokens" and spec.scheme is None:
            raise ValueError(f"task {task}: a token task needs scheme (tags or iob2)")
        self.soft: Soft | SoftTags | None = None  # set by `distil_from`
        self.teacher: dict[str, Any] | None = None  # which head taught, and on what
        self.body: dict[str, Any] | None = None  # set by `distil_body`: how the body was made
        splits = {s: self._read(s) for s in ("train", "dev", "test") if self._has(s)}
        if "train" not in splits or "dev" not in splits:
            raise ValueError(f"task {task}: {spec.data} needs train.tsv and dev.tsv")
        self.labels = spec.labels or sorted({y for y in self._flat(splits["train"][1])})
        train = splits["train"]
        if spec.holdout:
            n = len(train[0])
            cut = n - max(1, round(n * spec.holdout))
            self.choose = (train[0][cut:], train[1][cut:])
            self.train = (train[0][:cut], train[1][:cut])
            self.report_split, self.report = "dev", splits["dev"]
        else:
            self.train, self.choose = train, splits["dev"]
            self.report_split = "test" if "test" in splits else "dev"
            self.report = splits[self.report_split]
        self.choose_split = "train-holdout" if spec.holdout else "dev"
        self.head = spec.head or config.head
        width = self.encoder.config.hidden_size
        self.reduction = self.head.reduction or (2 if width < 384 else 16)

    @property
    def bundle_task(self) -> str:
        """What the bundle serves: tags, sentiment (`/v1/sentiment/{language}`) or another
        text classification (`/v1/classify/{language}`)."""
        if self.spec.kind == "tokens":
            return "token-classification"
        return "sentiment" if self.task == "sentiment" else "classification"

    def _has(self, split: str) -> bool:
        return (self.spec.data / f"{split}.tsv").is_file()

    def _read(self, split: str) -> Split:
        path = self.spec.data / f"{split}.tsv"
        if self.spec.kind == "sequence":
            table = read_table(path, self.spec.text_column, self.spec.label_column)
            return table.texts, table.labels
        sentences = read_conll(path)
        return sentences.words, sentences.tags

    @staticmethod
    def _flat(gold: list[Any]) -> list[str]:
        return [t for y in gold for t in (y if isinstance(y, list) else [y])]

    def _encode(self, split: Split) -> Any:
        if self.spec.kind == "tokens":
            data = Sentences(list(split[0]), list(split[1]))
            return encode(self.tokenizer, data, self.labels, self.config.max_length)
        out = self.tokenizer(list(split[0]), truncation=True, max_length=self.config.max_length)
        return [list(x) for x in out["input_ids"]]

    def _unlabeled(self, texts: list[str]) -> Any:
        """Unlabeled texts as this run's heads read them: token ids, or (token tasks) the
        words of each text (`words_of`) with their first tokens."""
        if self.spec.kind == "tokens":
            words = [words_of(t) for t in texts]
            return encode_words(self.tokenizer, words, self.config.max_length)
        return self._encode((texts, [None] * len(texts)))

    def score(self, encoded: Any, gold: list[Any], model: torch.nn.Module) -> dict[str, float]:
        pad = self.tokenizer.pad_token_id
        if self.spec.kind == "tokens":
            assert self.spec.scheme is not None
            predicted = predict(model, encoded, pad)  # type: ignore[arg-type]
            return word_scores(gold, predicted, self.labels, self.spec.scheme)
        predicted_ids = predict_texts(model, encoded, pad)  # type: ignore[arg-type]
        result = scores(np.array([self.labels.index(y) for y in gold]), predicted_ids, self.labels)
        return {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}

    @property
    def key(self) -> str:
        """The figure heads are chosen by: seqeval F1 (POS and NER, as the paper reports
        them), macro-F1 (sentiment)."""
        return "f1" if self.spec.kind == "tokens" else "macro_f1"

    def run(self) -> dict[str, Any]:
        train, choose, report = (self._encode(s) for s in (self.train, self.choose, self.report))
        head = self.head
        search = {
            rate: self._seed(head.seeds[0], rate, train, choose, report)
            for rate in head.learning_rates
        }
        rate = max(head.learning_rates, key=lambda r: search[r][f"choose_{self.key}"])
        runs = [search[rate]] + [
            self._seed(seed, rate, train, choose, report) for seed in head.seeds[1:]
        ]
        best = max(runs, key=lambda r: r[f"choose_{self.key}"])

        def spread(key: str) -> dict[str, float]:
            values = np.array([r[key] for r in runs])
            return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4)}

        figures = sorted(k for k in runs[0] if k.startswith(("choose_", "report_")))
        result = {
            "task": self.task,
            "encoder": self.encoder_name,
            "encoder_parameters": sum(p.numel() for p in self.encoder.parameters()),
            "kind": self.spec.kind,
            "scheme": self.spec.scheme,
            "labels": self.labels,
            "reduction": self.reduction,
            "choose_split": self.choose_split,
            "report_split": self.report_split,
            "sizes": {
                "train": len(self.train[0]),
                "choose": len(self.choose[0]),
                "report": len(self.report[0]),
            },
            "learning_rate": rate,
            "learning_rate_search": {str(r): search[r][f"choose_{self.key}"] for r in search},
            "distill": self.teacher,
            "body": self.body,
            "best_seed": best["seed"],
            "figures": {k: spread(k) for k in figures},
            "runs": runs,
        }
        if processes().is_main_process:
            (self.folder / "report.json").write_text(json.dumps(result, indent=2))
        return result

    def _file(self, seed: int, rate: float, suffix: str) -> Path:
        return self.folder / "runs" / f"seed{seed}-lr{rate:g}{suffix}"

    def _seed(self, seed: int, rate: float, train: Any, choose: Any, report: Any) -> dict[str, Any]:
        """One seed's head, or its saved report: a stopped task resumes per seed."""
        saved = self._file(seed, rate, ".json")
        head = self.head
        settings = HeadSettings("adapter", self.reduction, rate, head.batch_size, head.epochs, seed)
        identity = {"encoder_id": self.encoder_id, "settings": asdict(settings)}
        if self.teacher is not None:
            identity["distill"] = self.teacher
        if saved.is_file():
            earlier = _record_of(saved, identity)
            if earlier is not None:
                print(f"{self.task} seed {seed} lr {rate:g}: done earlier ({saved})", flush=True)
                return earlier
            print(
                f"{self.task} seed {seed} lr {rate:g}: {saved} is of another body or settings",
                flush=True,
            )
        model, log = self._train(settings, train, choose, self.soft)
        result = identity | {
            "seed": seed,
            "learning_rate": rate,
            "best_epoch": log["best_epoch"],
            "seconds": log["seconds"],
        }
        for prefix, encoded, gold in (
            ("choose", choose, self.choose[1]),
            ("report", report, self.report[1]),
        ):
            result |= {f"{prefix}_{k}": v for k, v in self.score(encoded, gold, model).items()}
        state = processes()
        if state.is_main_process:
            _save_head(model, self._file(seed, rate, ".pt"))
            saved.write_text(json.dumps(result, indent=2))
            print(json.dumps({"task": self.task} | result), flush=True)
        state.wait_for_everyone()
        return result

    def _train(
        self,
        settings: HeadSettings,
        train: Any,
        choose: Any,
        soft: Soft | SoftTags | None,
        body: BodyRun | None = None,
    ) -> tuple[torch.nn.Module, dict[str, Any]]:
        """A head (or with `body`, the body with its classifier) trained on the labels and, if
        given, a teacher's predictions on unlabeled text (`soft`)."""
        pad = self.tokenizer.pad_token_id
        model: torch.nn.Module
        if self.spec.kind == "tokens":
            assert soft is None or isinstance(soft, SoftTags)
            model, log = train_tagger(
                self.encoder, self.labels, train, choose, pad, settings, self._choose_score,
                soft, body,
            )  # fmt: skip
        else:
            y = (
                [self.labels.index(v) for v in self.train[1]],
                [self.labels.index(v) for v in self.choose[1]],
            )
            assert soft is None or isinstance(soft, Soft)
            model, log = train_head(
                self.encoder, self.labels, (train, y[0]), (choose, y[1]), pad, settings, soft,
                body,
            )  # fmt: skip
        return model, log

    def _choose_score(self, predicted: list[list[int | None]]) -> float:
        """A token head's figure on the choosing split, from its word predictions."""
        assert self.spec.scheme is not None
        return word_scores(self.choose[1], predicted, self.labels, self.spec.scheme)[self.key]

    def chosen(self) -> dict[str, Any]:
        """The record of the head this (baseline's) run chose, from its report."""
        path = self.folder / "report.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"task {self.task}: no {path}; train the baseline's heads first "
                f"(`python -m training compress tasks CONFIG --baseline --task {self.task}`)"
            )
        report = json.loads(path.read_text())
        return next(r for r in report["runs"] if r["seed"] == report["best_seed"])

    def seeds(self) -> list[dict[str, Any]]:
        """The records of this (baseline's) run's heads at the rate it chose, one per seed."""
        report = json.loads((self.folder / "report.json").read_text())
        return [r for r in report["runs"] if r["learning_rate"] == report["learning_rate"]]

    def head_of(self, record: dict[str, Any]) -> torch.nn.Module:
        """The head of one of this (baseline's) run's records: its saved weights, or, where
        only its record was kept, the same head trained again and checked against the
        record's choosing figure."""
        seed, rate = record["seed"], record["learning_rate"]
        weights = self._file(seed, rate, ".pt")
        if weights.is_file():
            head = _head_model(
                self.encoder, self.labels, self.reduction, self.spec.kind == "tokens"
            )
            head.load_state_dict(torch.load(weights, map_location="cpu"), strict=False)
            return head.eval()
        print(f"{self.task}: training the baseline's seed {seed} head again ({weights})")
        settings = HeadSettings(**record["settings"])
        choose = self._encode(self.choose)
        model, _ = self._train(settings, self._encode(self.train), choose, None)
        again = self.score(choose, self.choose[1], model)[self.key]
        if abs(again - record[f"choose_{self.key}"]) > 1e-6:
            raise ValueError(
                f"task {self.task}: the baseline's seed {seed} head trained again scores "
                f"{again:.4f} on {self.choose_split}, its record {record[f'choose_{self.key}']}"
            )
        if processes().is_main_process:
            _save_head(model, weights)
        return model.eval()

    def _taught(
        self, baseline: TaskRun, distill: HeadDistillation, cache_name: str
    ) -> tuple[dict[str, Any], Soft | SoftTags]:
        """The baseline's chosen head's logits (or its seeds' mean, `teachers: seeds`) on
        `distill`'s texts as this run reads them (kept in `cache_name`, made again only when
        the teacher or texts change), and the record of which head taught on what."""
        with distill.texts.open(encoding="utf-8") as lines:
            texts = [t for t in (line.strip() for line in lines) if t][: distill.limit]
        chosen = baseline.chosen()
        ensemble = None
        if distill.teachers == "seeds":
            records = baseline.seeds()
            ensemble = MeanLogits([baseline.head_of(r) for r in records])
            choose = baseline._encode(baseline.choose)
            figure = baseline.score(choose, baseline.choose[1], ensemble)[self.key]
            seeds = ", ".join(str(r["seed"]) for r in records)
            about = f"seeds {seeds} (their logits averaged)"
        else:
            figure, about = chosen[f"choose_{self.key}"], f"seed {chosen['seed']}"
        # `teachers` at its default is left out: records and kept labels read as before it was
        leave_out = {"teachers"} if ensemble is None else None
        teacher = distill.model_dump(mode="json", exclude=leave_out) | {
            "texts_used": len(texts),
            "teacher": f"{baseline.encoder_name} {self.task} head, {about} "
            f"at {chosen['learning_rate']:g}",
            f"teacher_choose_{self.key}": figure,
        }
        tokens = self.spec.kind == "tokens"
        cache = self.folder / cache_name
        key = json.dumps(teacher, sort_keys=True)
        flat = None
        if cache.is_file():
            with np.load(cache) as saved:
                flat = saved["logits"] if str(saved["key"]) == key else None
        if flat is None:
            head = baseline.head_of(chosen) if ensemble is None else ensemble
            pad, encoded = baseline.tokenizer.pad_token_id, baseline._unlabeled(texts)
            desc = f"{self.task}: the teacher labels {len(texts):,} texts"
            if tokens:
                flat = np.concatenate(word_logits(head, encoded, pad, desc))  # type: ignore[arg-type]
            else:
                flat = logits(head, encoded, pad, desc)  # type: ignore[arg-type]
            if processes().is_main_process:
                np.savez(cache, key=np.array(key), logits=flat)
        inputs = self._unlabeled(texts)
        if tokens:  # the flat rows back into sentences, one row per word
            cuts = np.cumsum([len(f) for f in inputs.firsts])[:-1]
            return teacher, SoftTags(inputs, np.split(flat, cuts), distill.temperature)
        return teacher, Soft(inputs, flat, distill.temperature)

    def distil_from(self, baseline: TaskRun) -> None:
        """Teach this run's heads with the baseline's chosen head on the configured texts:
        per text, or per word of each text for a token task."""
        assert self.spec.distill is not None
        self.teacher, self.soft = self._taught(baseline, self.spec.distill, "teacher.npz")

    def distil_body(self, baseline: TaskRun | None) -> None:
        """Replace this run's encoder by the student's body trained whole for the task
        (`body`): on the labels and the baseline's chosen head's tags of the texts, or on the
        labels alone (no texts, no baseline). Made once and kept in `<folder>/body/` with its
        record; the heads are then trained on it and packed with it."""
        spec = self.spec.body
        assert spec is not None
        size = self.encoder.config.intermediate_size
        if spec.ffn is not None and spec.ffn > size:  # before the teacher labels any text
            raise ValueError(
                f"task {self.task}: body ffn {spec.ffn} is wider than the student's {size}"
            )
        teacher: dict[str, Any] | None = None
        soft = None
        if spec.texts is not None:
            assert baseline is not None
            teacher, soft = self._taught(baseline, spec, "body-teacher.npz")
        settings = HeadSettings(
            "full", self.reduction, spec.learning_rate, spec.batch_size, spec.epochs, seed=1
        )
        identity: dict[str, Any] = {
            "encoder_id": self.encoder_id,
            "settings": asdict(settings),
            "teacher": teacher,
        }
        if spec.ffn is not None:
            identity["ffn"] = spec.ffn
        folder = self.folder / "body"
        saved, weights = folder / "body.json", folder / "encoder"
        earlier = _record_of(saved, identity) if weights.is_dir() else None
        if earlier is not None:
            print(f"{self.task}: body distilled earlier ({folder})", flush=True)
            self.encoder, record = load_encoder(weights), earlier
        else:
            if spec.ffn is not None:
                self.encoder = self._cut_ffn(spec.ffn)
            train, choose = self._encode(self.train), self._encode(self.choose)
            # the body learns the teacher; the heads trained on it do not
            model, log = self._train(settings, train, choose, soft, BodyRun(folder, identity))
            assert isinstance(model, AdaptedHead)
            record = identity | log
            # the body with its own classifier is itself a model (trained whole): its figures
            for prefix, encoded, gold in (
                ("choose", choose, self.choose[1]),
                ("report", self._encode(self.report), self.report[1]),
            ):
                record |= {f"{prefix}_{k}": v for k, v in self.score(encoded, gold, model).items()}
            self.encoder = model.encoder.eval()
            if processes().is_main_process:
                self.encoder.save_pretrained(weights)
                saved.write_text(json.dumps(record, indent=2))
                print(json.dumps({"task": self.task, "body": record}), flush=True)
            processes().wait_for_everyone()
        self.encoder_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self.body = {k: v for k, v in record.items() if k != "history"}

    def _cut_ffn(self, width: int) -> BertModel:
        """The student with `width` FFN neurons per layer: those that contribute most on the
        task's train texts (`ffn_contribution`)."""
        texts = (
            self.train[0] if self.spec.kind == "sequence" else [" ".join(w) for w in self.train[0]]
        )
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)
        pad = self.tokenizer.pad_token_id
        contribution = ffn_contribution(self.encoder, [list(x) for x in ids["input_ids"]], pad)
        return prune_ffn(self.encoder, most_important(contribution, width))

    @functools.cached_property
    def student_is_task_model(self) -> bool:
        """Whether the student is itself a task model holding a body trained for its task."""
        return body_field(self.config.student) == "."

    @property
    def carries_body(self) -> bool:
        """Whether the packed sources hold their body: one trained here, or the student's own
        when the student is a task model. New heads on such a model usually replace its head
        under its name, where naming the student as their body would name themselves."""
        return self.body is not None or self.student_is_task_model

    def _body_method(self) -> str:
        """How the task's own body was made, for the sources' provenance."""
        if self.body is None:
            return (
                f", on the body of {self.config.student.name} (trained for its task)"
                if self.student_is_task_model
                else ""
            )
        cut = f" with its FFN cut to {self.body['ffn']}" if self.body.get("ffn") else ""
        if self.body["teacher"] is None:
            return f", its body{cut} trained whole for the task on the labels"
        return f", its body{cut} distilled for the task from {self.body['teacher']['teacher']}"

    def pack(self, result: dict[str, Any]) -> Path:
        """The best head as sources naming the student as their body, or (a body trained for
        the task, here or before: `carries_body`) holding that body too, as int8 rows with its
        tokenizer: `body` is then `.`, and the report split is scored again on the model
        rebuilt from the sources, whose figures are the ones recorded."""
        name = self.spec.name or f"{self.config.language}-{self.task}"
        out = self.config.sources / name
        tokenizer = {  # read first: the student's sources may be the ones replaced
            file: (self.config.student / file).read_bytes()
            for file in TOKENIZER_FILES
            if self.carries_body and (self.config.student / file).is_file()
        }
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        state = torch.load(
            self._file(result["best_seed"], result["learning_rate"], ".pt"), map_location="cpu"
        )
        save_file(fp16(state), str(out / HEAD))
        if self.carries_body:
            body = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
            save_file(compact(body), str(out / WEIGHTS))
            self.encoder.config.to_json_file(str(out / ENCODER_CONFIG))
            for file, data in tokenizer.items():  # the student's tokenizer, as committed
                (out / file).write_bytes(data)
        tokens = self.spec.kind == "tokens"
        reference = [" ".join(w) for w in self.report[0][:200]] if tokens else self.report[0][:200]
        best = next(r for r in result["runs"] if r["seed"] == result["best_seed"])
        source = {
            "kind": "task-head",
            "body": "."
            if self.carries_body
            else str(Path("..") / self.config.student.resolve().name),
            "labels": self.labels,
            "head_kind": "adapter",
            "reduction": self.reduction,
            "max_length": self.config.max_length,
            "bundle": {
                "name": name,
                "language": self.config.language,
                "version": "0.1.0",
                "task": self.bundle_task,
                "label_scheme": self.spec.scheme,
                "variants": ["fp32", "fp16", "int8"],
                "min_variant_agreement": self.spec.min_variant_agreement,
                "default": self.spec.default,
                "out": str(self.config.models / name),
            },
            "provenance": {
                "method": f"{self.task} head (task adapters + classifier) on the served student"
                + (f", distilled from {self.teacher['teacher']}" if self.teacher else "")
                + self._body_method(),
                "task_data": str(self.spec.data),
                "learning_rate": result["learning_rate"],
                "exported_seed": result["best_seed"],
                "choose_split": result["choose_split"],
            },
            "evaluation": [
                {
                    "dataset": f"{self.task}-{self.config.language}-{result['report_split']}",
                    "n": result["sizes"]["report"],
                    **{
                        k.removeprefix("report_"): v
                        for k, v in best.items()
                        if k.startswith("report_")
                    },
                    "seeds": {
                        k.removeprefix("report_"): v
                        for k, v in result["figures"].items()
                        if k.startswith("report_")
                    },
                }
            ],
            "reference": {"texts": reference, "labels": None},
        }
        write_sources(out, source)
        if self.carries_body:  # the figures of the model as rebuilt (its body int8 rows)
            model, _, _ = rebuild_task_model(out)
            rebuilt = self.score(self._encode(self.report), self.report[1], model)
            trained = {
                k.removeprefix("report_"): v for k, v in best.items() if k.startswith("report_")
            }
            evaluation: list[dict[str, Any]] = source["evaluation"]  # type: ignore[assignment]
            evaluation[0] |= rebuilt | {"trained_body": trained}
            write_sources(out, source)
        return out


def _record_of(saved: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """A finished run's saved record, if there is one and it was made with `identity` (the
    same body, settings and teacher); None otherwise."""
    if not saved.is_file():
        return None
    record: dict[str, Any] = json.loads(saved.read_text())
    return record if {k: record.get(k) for k in identity} == identity else None


def _head_model(
    encoder: BertModel, labels: list[str], reduction: int, tokens: bool
) -> torch.nn.Module:
    """An untrained head of either kind on `encoder`, for a saved head's weights to load into."""
    if tokens:
        return TokenClassifier(encoder, labels, reduction)
    return EncoderClassifier(encoder, labels, "adapter", reduction)


def _is_head(key: str) -> bool:
    """The trained part of a head model: its adapters and its classifier."""
    return ".adapter." in key or key.startswith("classifier.")


def _save_head(model: torch.nn.Module, path: Path) -> None:
    """The trained part of a head model, to `path` (its folder made if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in model.state_dict().items() if _is_head(k)}, path)


def run_tasks(
    config: TasksConfig, only: list[str] | None = None, baseline: bool = False
) -> dict[str, Any]:
    """Every configured task (or `only` these): heads, report, sources; returns a summary.
    With `baseline`, the same heads on the uncompressed model instead: reports only."""
    if config.threads:
        torch.set_num_threads(config.threads)
    unknown = sorted(set(only or []) - set(config.tasks))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; configured: {sorted(config.tasks)}")
    if baseline:
        if config.baseline is None:
            raise ValueError("--baseline: the configuration names no baseline model")
        encoder = (config.baseline, config.baseline, *load_baseline(config.baseline))
    else:  # the student's sources, to the byte but for where it goes and how it scored:
        # heads of another student are not reused
        student = config.student
        encoder = (student.name, body_digest(student), *load_student(student))
    summary = {}
    for task in only or list(config.tasks):
        folder = config.out / "baseline" / task if baseline else config.out / task
        run = TaskRun(config, task, encoder, folder)
        run.folder.mkdir(parents=True, exist_ok=True)
        taught = None
        if not baseline and (run.spec.distill or (run.spec.body and run.spec.body.texts)):
            if config.baseline is None:
                raise ValueError(f"task {task} distils the baseline's head; no baseline named")
            teacher = (config.baseline, config.baseline, *load_baseline(config.baseline))
            taught = TaskRun(config, task, teacher, config.out / "baseline" / task)
        if not baseline and run.spec.body is not None:
            run.distil_body(taught)
        if not baseline and run.spec.distill is not None:
            assert taught is not None
            run.distil_from(taught)
        result = run.run()
        figures = {k: v for k, v in result["figures"].items() if k.startswith("report_")}
        if baseline:
            summary[task] = {"report": str(folder / "report.json")} | figures
            continue
        if processes().is_main_process:  # the other processes only trained their shares
            sources = run.pack(result)
            built = build_task_head(sources, config.models / sources.name, record=True)
            summary[task] = {"sources": str(sources), "bundle": built["bundle"]} | figures
        processes().wait_for_everyone()
    return summary


def rebuild_task_model(source_dir: Path) -> tuple[torch.nn.Module, Any, TaskHeadSources]:
    """The body's encoder with the task's head on it, from the committed sources."""
    source: TaskHeadSources = read_sources(source_dir, TaskHeadSources)
    body = (source_dir / source.body).resolve()
    if not (body / WEIGHTS).is_file():
        raise FileNotFoundError(f"{source_dir}: its body {body} has no {WEIGHTS}")
    encoder, tokenizer = load_student(body)
    labels, reduction = source.labels, source.reduction
    tokens = source.bundle.task == "token-classification"
    model = _head_model(encoder, labels, reduction, tokens)
    head = {k: v.float() for k, v in load_file(str(source_dir / HEAD)).items()}
    missing, unexpected = model.load_state_dict(head, strict=False)
    if unexpected or any(_is_head(k) for k in missing):
        raise ValueError(f"{source_dir / HEAD} does not fit the body: {unexpected or missing}")
    tokenizer.model_max_length = source.max_length
    return model.eval(), tokenizer, source


def predict_word_tags(model: torch.nn.Module, tokenizer: Any, texts: list[str]) -> list[str]:
    """Reference predictions of a token model: each text's words (split on spaces) tagged,
    as one space-joined string per text."""
    labels: dict[int, str] = model.config.id2label  # type: ignore[union-attr,assignment]
    data = Sentences([t.split() for t in texts], [["_"] * len(t.split()) for t in texts])
    encoded = encode(tokenizer, data, ["_"], tokenizer.model_max_length)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    predicted = predict(model, encoded, pad)  # type: ignore[arg-type]
    return [" ".join("-" if p is None else labels[p] for p in sent) for sent in predicted]


def build_task_head(source_dir: Path, out: Path, record: bool = False) -> dict[str, Any]:
    """The task's bundle from its sources and its body's."""
    from training.export.rebuild import export_from_sources

    model, tokenizer, source = rebuild_task_model(source_dir)
    tokens = source.bundle.task == "token-classification"
    body = "its own body, trained for the task" if source.body == "." else source.body
    description = (
        f"{source.bundle.language} {source.bundle.name}: "
        f"{'token' if tokens else 'text'} head on the compressed student ({body})"
    )
    predictor = predict_word_tags if tokens else None
    return export_from_sources(model, tokenizer, source_dir, out, record, description, predictor)
