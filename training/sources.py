"""Committed model sources (`models/sources/<name>/`): what `source.json` holds (a model per
kind of sources, checked when read and when written), and whether a built bundle is current.

Kept free of torch so that `python -m training build --if-changed` answers in well under a
second when nothing changed: later service starts stay fast."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

DIGEST_KEY = "sources_sha256"
SOURCE = "source.json"


class SourceBundle(BaseModel):
    """The bundle the sources build: its manifest's identity and where it goes."""

    model_config = ConfigDict(extra="forbid")
    name: str
    language: str
    version: str
    task: str
    variants: list[str]
    min_variant_agreement: float = Field(ge=0, le=1)
    default: bool = True  # False: served for its language only when a request names it
    label_scheme: Literal["tags", "iob2"] | None = None  # token classification
    out: str
    sources: str | None = None


class Reference(BaseModel):
    """Texts whose predictions a rebuild must reproduce (`labels`: None until recorded)."""

    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(min_length=1)
    labels: list[str] | None = None


class _Sources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: SourceBundle
    max_length: int = Field(ge=4)
    provenance: dict[str, Any]
    evaluation: list[dict[str, Any]] = Field(default_factory=list)
    reference: Reference
    # normalisation applied before the tokenizer (put into it, and into the manifest)
    preprocessing: dict[str, Any] = Field(default_factory=dict)


class KDASources(_Sources):
    """A KDA student: the teacher, the adapter and the kept pieces of the base's table."""

    kind: Literal["kda"]
    base: str
    base_tokenizer_sha256: str
    variant: str
    svd_rank: int | None
    heads: int
    logit_shift: list[float] | None = None  # baked into the head's bias


class CompressedSources(_Sources):
    """A compressed student with its topic head."""

    kind: Literal["compressed"]
    labels: list[str]
    head_kind: str
    reduction: int


class TaskHeadSources(_Sources):
    """A head on the student whose sources `body` names (a path from these), or on a body
    of its own held beside it (`body` is `.`: a task-distilled body)."""

    kind: Literal["task-head"]
    body: str
    labels: list[str]
    head_kind: str
    reduction: int


Sources = Annotated[KDASources | CompressedSources | TaskHeadSources, Field(discriminator="kind")]
SourcesT = TypeVar("SourcesT", KDASources, CompressedSources, TaskHeadSources)
_ADAPTER: TypeAdapter[KDASources | CompressedSources | TaskHeadSources] = TypeAdapter(Sources)


def read_sources(source_dir: Path, kind: type[SourcesT] | None = None) -> Any:
    """`source_dir`'s source.json, checked (errors name the file and the field); with `kind`,
    a description of another kind of model is refused."""
    path = source_dir / SOURCE
    if not path.is_file():
        raise FileNotFoundError(f"model sources {source_dir} have no {SOURCE}")
    try:
        sources = _ADAPTER.validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from None
    if kind is not None and not isinstance(sources, kind):
        raise ValueError(f"{path} describes a {sources.kind!r} model")
    return sources


def write_sources(
    source_dir: Path, sources: KDASources | CompressedSources | TaskHeadSources | dict[str, Any]
) -> None:
    """Check and write source.json (a dict is validated first; only the fields it was given
    are written, so a rewritten file keeps its shape)."""
    checked = _ADAPTER.validate_python(sources) if isinstance(sources, dict) else sources
    text = checked.model_dump_json(indent=2, exclude_unset=True)
    (source_dir / SOURCE).write_text(text + "\n", encoding="utf-8")


# source.json's fields that record where a model goes and how it was made and scored
RECORD_FIELDS = ("bundle", "provenance", "evaluation", "reference")


def _file_chunks(source_dir: Path, leave_out: str | None = None) -> Iterator[bytes]:
    """What a digest takes from each file of the sources, in a fixed order: its name, then
    its contents' sha256."""
    if not source_dir.is_dir():
        raise FileNotFoundError(f"model sources {source_dir} do not exist")
    for path in sorted(p for p in source_dir.rglob("*") if p.is_file() and p.name != leave_out):
        yield str(path.relative_to(source_dir)).encode() + b"\0"
        yield hashlib.sha256(path.read_bytes()).digest()


def digest(source_dir: Path) -> str:
    """One sha256 over every file of the sources (names and contents), and of the sources of
    the body they name (a task head's bundle is stale when its student changes too)."""
    total = hashlib.sha256()
    for chunk in _file_chunks(source_dir):
        total.update(chunk)
    body = body_of(source_dir)
    if body is not None:
        total.update(b"body\0" + digest(body).encode())
    return total.hexdigest()


def body_field(source_dir: Path) -> str | None:
    """`body` of a model's source.json: the path of the student a head names as its body,
    `.` for a head holding a body trained for its task, None for a student."""
    body: str | None = json.loads((source_dir / SOURCE).read_text(encoding="utf-8")).get("body")
    return body


def body_of(source_dir: Path) -> Path | None:
    """The sources of the student a head names as its body; None for a model that is its own
    body (a student, or a head holding a body trained for its task: `.`)."""
    body = body_field(source_dir)
    return source_dir / body if body and body != "." else None


def body_digest(source_dir: Path) -> str:
    """What a head trained on a student depends on: its files, and source.json without the
    record fields. A candidate student moved into `models/sources` (its bundle paths
    rewritten) so keeps the heads trained on it where it was made."""
    total = hashlib.sha256()
    for chunk in _file_chunks(source_dir, leave_out=SOURCE):
        total.update(chunk)
    fields = json.loads((source_dir / SOURCE).read_text())
    kept = {key: value for key, value in fields.items() if key not in RECORD_FIELDS}
    total.update(json.dumps(kept, sort_keys=True).encode())
    return total.hexdigest()


def bundle_is_current(source_dir: Path, bundle_dir: Path) -> bool:
    manifest = bundle_dir / "manifest.json"
    if not manifest.is_file():
        return False
    recorded = json.loads(manifest.read_text()).get("provenance", {}).get(DIGEST_KEY)
    return recorded == digest(source_dir)


def bundle_path(source_dir: Path) -> Path:
    """Where the sources' bundle goes unless told otherwise: `bundle.out` of source.json."""
    return Path(read_sources(source_dir).bundle.out)


# what builds a bundle from each kind of sources (`kind` in source.json)
BUILDERS = {
    "kda": "training.kda.package:build",
    "compressed": "training.compress.package:build",
    "task-head": "training.compress.tasks:build_task_head",
}


def builder(source_dir: Path) -> Callable[..., dict[str, Any]]:
    """The function that builds `source_dir`'s bundle, by the kind its source.json names."""
    module, name = BUILDERS[read_sources(source_dir).kind].split(":")
    function: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), name)
    return function


def rename_sources(source_dir: Path, name: str, default: bool | None = None) -> list[Path]:
    """Move committed sources to `<parent>/<name>` and rename the bundle they build (its name,
    its `out` and `sources` paths; `default` when given), then point every head beside them
    that names them as its body at the new place: a student that gives up its slot to another
    model keeps serving, with the heads trained on it, under a new name. The weights are not
    touched, so the heads' identity of their body (`body_digest`) is unchanged. Returns the
    heads rewritten."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a folder name (the sources stay beside the others)")
    new = source_dir.parent / name
    if new.exists():
        raise ValueError(f"{new} exists already")
    read_sources(source_dir)  # refuses what is not sources
    fields = json.loads((source_dir / SOURCE).read_text(encoding="utf-8"))
    bundle = fields["bundle"]
    bundle["name"] = name
    for key in ("out", "sources"):
        if bundle.get(key):
            bundle[key] = str(Path(bundle[key]).parent / name)
    if default is not None:
        bundle["default"] = default
    heads = []
    for head in sorted(source_dir.parent.glob(f"*/{SOURCE}")):
        body = body_of(head.parent)
        if body is not None and body.resolve() == source_dir.resolve():
            heads.append(head.parent)
    source_dir.rename(new)
    _write_fields(new, fields)
    for head in heads:
        fields = json.loads((head / SOURCE).read_text(encoding="utf-8"))
        fields["body"] = str(Path("..") / name)
        _write_fields(head, fields)
    return heads


def _write_fields(source_dir: Path, fields: dict[str, Any]) -> None:
    """source.json with its fields in their order (checked first), as `write_sources` writes."""
    _ADAPTER.validate_python(fields)
    text = json.dumps(fields, indent=2, ensure_ascii=False)
    (source_dir / SOURCE).write_text(text + "\n", encoding="utf-8")
