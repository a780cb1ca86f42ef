"""Every committed recipe configuration parses with the model of the command it is for, and
every recipe script with bash, so a renamed or removed setting (or a stray quote) cannot leave
a recipe that fails only when someone runs it, hours into a long run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from training.compress.config import CompressConfig
from training.compress.tasks import TasksConfig
from training.finetune.config import FinetuneConfig
from training.kda.adapt import AdaptConfig
from training.kda.config import KDAConfig
from training.probe.config import ProbeConfig
from training.settings_files import Settings
from training.sources import body_digest

RECIPE_DIR = Path(__file__).resolve().parents[2] / "training" / "recipes"
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))
SCRIPTS = sorted(RECIPE_DIR.glob("*.sh"))
MODELS: dict[str, type[Settings]] = {  # by the recipe's name: what reads it
    "compress-": CompressConfig,
    "tasks-": TasksConfig,
    "kda-vi-adapt": AdaptConfig,
    "kda-": KDAConfig,
    "probe-": ProbeConfig,
    "teacher-": FinetuneConfig,
}


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_recipe_parses(recipe: Path) -> None:
    model = next((m for prefix, m in MODELS.items() if recipe.name.startswith(prefix)), None)
    assert model is not None, f"{recipe.name}: no configuration model is known for it"
    model.from_file(recipe)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_recipe_script_parses(script: Path) -> None:
    """`bash -n` reads the whole script without running it: a syntax error deep in a recipe
    otherwise shows only when a run reaches it."""
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_command_line_options_reach_the_settings_they_name() -> None:
    """A flag whose destination is a field (dotted: a nested one) replaces the recipe's
    value; flags not given leave it; the flags that are not settings are ignored."""
    from training.cli import build_parser

    recipe = RECIPES[0].parent / "kda-vi-sentiment.yaml"
    given = ["kda", "run", str(recipe), "--threads", "1", "--bundle-out", "/tmp/b"]
    config = KDAConfig.from_command(build_parser().parse_args([*given, "--no-export"]))
    assert config.threads == 1
    assert config.bundle.out == Path("/tmp/b")
    assert config.bundle.name == "vi-sentiment"  # the rest of the nested block kept
    assert config.variant == KDAConfig.from_file(recipe).variant

    from training.finetune.config import FinetuneConfig

    flags = ["finetune", "--model", "minilm", "--train", "t.csv", "--val", "v.csv", "--out", "o"]
    config_ft = FinetuneConfig.from_command(build_parser().parse_args([*flags, "--lr", "0.003"]))
    assert config_ft.learning_rate == 0.003
    assert config_ft.freeze_embeddings == FinetuneConfig.model_fields["freeze_embeddings"].default
    with pytest.raises(ValueError, match="the command line: learning_rate"):
        FinetuneConfig.from_command(build_parser().parse_args([*flags, "--lr", "3"]))


def recipe_script(name: str) -> ModuleType:
    """A script of training/recipes (not a package) loaded as a module."""
    spec = importlib.util.spec_from_file_location(name, RECIPES[0].parent / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tasks_table_judges_only_drops_between_equal_budgets() -> None:
    """A student head trained for more epochs than its baseline's says nothing about the
    body, so the table names the mismatch instead of calling the goal met or missed; a
    student distilled from the baseline's head is judged against it."""
    table = recipe_script("tasks_table")

    def report(epochs: int | None) -> dict[str, Any]:
        run = {} if epochs is None else {"settings": {"epochs": epochs, "batch_size": 64}}
        return {"runs": [run]}

    assert table.verdict(2.0, 3.0, report(15), report(15)) == "met"
    assert table.verdict(4.0, 3.0, report(15), report(15)) == "missed"
    assert table.verdict(2.0, 3.0, report(None), report(5)) == "met"  # older: no settings
    assert table.verdict(None, 3.0, report(15), report(5)) == "—"
    assert table.verdict(2.0, 3.0, report(15), report(5)) == (
        "not comparable (student 15 epochs at batch 64, baseline 5 at 64)"
    )
    distilled = report(5) | {"distill": {"texts_used": 5000}}
    assert table.verdict(4.0, 3.0, distilled, report(20)) == "missed"


def test_the_tasks_table_says_how_a_tasks_own_body_was_trained(tmp_path: Path) -> None:
    table = recipe_script("tasks_table")
    figures = {f"report_{k}": {"mean": 0.84, "std": 0.01} for k in ("f1", "precision", "recall")}
    runs = [{"settings": {"epochs": 30, "batch_size": 64}}]
    baseline = {"figures": figures | {"report_f1": {"mean": 0.857, "std": 0.005}}, "runs": runs}
    student = {"figures": figures, "runs": runs, "encoder": "sw-topic", "report_split": "dev"}
    student |= {"encoder_parameters": 12_970_000}
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "ner-baseline.json").write_text(json.dumps(baseline))
    taught = {"teacher": {"texts_used": 22235}}
    (tmp_path / "sw" / "ner.json").write_text(json.dumps(student | {"body": taught}))
    sources = tmp_path / "sources"
    row = table.table("ner", tmp_path, sources).splitlines()[2]
    assert "sw-topic (13.0M), its body trained for the task on the baseline's tags of 22,235" in row
    assert "| 1.7 | 82.67 → 79.18 | ≤ 3.5 | met |" in row
    (tmp_path / "sw" / "ner.json").write_text(json.dumps(student | {"body": {"teacher": None}}))
    assert "its body trained for the task on the labels |" in table.table("ner", tmp_path, sources)


def test_the_tasks_table_names_a_renamed_body_as_it_serves(tmp_path: Path) -> None:
    """Heads trained on `sw-topic` whose body now serves as `sw-topic-small` (renamed when a
    faster student took its slot) are shown on the name a user asks for."""
    table = recipe_script("tasks_table")
    for name, fields in (("sw-topic-small", {}), ("sw-pos", {"body": "../sw-topic-small"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "source.json").write_text(json.dumps(fields))

    assert table.serving_name(tmp_path, "sw", "pos", "sw-topic") == (
        "sw-topic-small, trained as sw-topic"
    )
    assert table.serving_name(tmp_path, "sw", "ner", "sw-topic") == "sw-topic"  # not served here
    (tmp_path / "sw-pos" / "source.json").write_text(json.dumps({"body": "."}))
    assert table.serving_name(tmp_path, "sw", "pos", "sw-topic") == "sw-topic"  # its own body
    started = body_digest(tmp_path / "sw-topic-small")  # its own body, started from that one
    assert table.serving_name(tmp_path, "sw", "pos", "sw-topic", started) == (
        "sw-topic-small, trained as sw-topic"
    )
    assert table.serving_name(tmp_path, "sw", "pos", "sw-topic", "0" * 64) == "sw-topic"


def test_the_family_table_says_which_side_of_the_baseline_a_student_is() -> None:
    """A student above its baseline is not "-0.8 points below" it."""
    table = recipe_script("compress_family_table")

    assert table.points(4.6, 5.3) == "4.6 / 5.3 points below the baseline"
    assert table.points(-0.8, -0.84) == "0.8 / 0.8 points above the baseline"
    assert table.points(0.5, -0.3) == "-0.5 / +0.3 points against the baseline"
    assert table.points(0.02) == "0.0 points from the baseline"


def test_the_family_table_checks_the_faster_candidate_against_the_default_slots_goals() -> None:
    """The candidate the rule kept (without task-aware distillation where rule 3 dropped it)
    is judged by the same three goals as the small student, against the same baseline."""
    table = recipe_script("compress_family_table")

    def run(parameters: int, accuracy: float, f1: float, ratio: float) -> dict[str, Any]:
        score = {"mean": f1, "std": 0.0}
        student = {"parameters": parameters, "test_accuracy": {"mean": accuracy, "std": 0.0}}
        student |= {"test_macro_f1": score, "speed": {"batch32_vs_uncompressed": ratio}}
        base = {"test_accuracy": score | {"mean": 0.843}, "test_macro_f1": score | {"mean": 0.836}}
        return {"rows": {"uncompressed": base, "vocab": student}}

    lines = table.goals(
        "vi",
        {
            "small": run(17_120_000, 0.851, 0.844, 2.37),
            "fast": run(15_940_000, 0.845, 0.837, 2.58),
            "fast-notask": run(15_940_000, 0.819, 0.808, 2.58),
        },
    )
    assert len(lines) == 2  # the small student, then only the candidate the rule kept
    assert "small: 14.6%" in lines[0]
    assert "(≥ 2.5×: **missed**)" in lines[0]
    assert lines[1].startswith("- faster candidate (FFN 768), no task-aware distillation: 13.6%")
    assert "2.4 / 2.8 points below the baseline (≤ 3 below: **met**)" in lines[1]
    assert "(≥ 2.5×: **met**)" in lines[1]


def test_source_fields_replace_only_the_keys_given(tmp_path: Path) -> None:
    """The variants of one student differ in the fields set; every other key is kept."""
    script = recipe_script("source_fields")
    (tmp_path / "source.json").write_text('{"name": "vi-sentiment", "logit_shift": [0, 0, 0]}')
    script.main(
        [str(tmp_path), '{"logit_shift": [0.5, 0, -0.5], "preprocessing": {"lowercase": true}}']
    )
    assert json.loads((tmp_path / "source.json").read_text()) == {
        "name": "vi-sentiment",
        "logit_shift": [0.5, 0, -0.5],
        "preprocessing": {"lowercase": True},
    }
    with pytest.raises(SystemExit, match="JSON object"):
        script.main([str(tmp_path), "[1, 2]"])
    with pytest.raises(SystemExit, match=r"no source\.json"):
        script.main([str(tmp_path / "missing"), "{}"])


def test_the_frontier_plot_marks_a_continued_student_against_its_familys_baseline(
    tmp_path: Path,
) -> None:
    """A continued student's heads report (`compress tasks`) beside a family's table is one
    point: its parameters over the uncompressed row's, its mean test macro-F1 minus that
    row's; starred (served) when its `served` field says so, and on the frontier if no point
    beats it."""
    frontier = recipe_script("compress_frontier")
    folder = tmp_path / "sw"
    folder.mkdir()
    uncompressed = {"parameters": 1000, "share_of_uncompressed": 1.0,
                    "test_macro_f1": {"mean": 0.80}}  # fmt: skip
    table = {"rows": {"uncompressed": uncompressed,
                      "vocab": {"share_of_uncompressed": 0.2, "test_macro_f1": {"mean": 0.70}}},
             "served": False}  # fmt: skip
    (folder / "small.json").write_text(json.dumps(table))
    report = {"encoder_parameters": 100, "figures": {"report_macro_f1": {"mean": 0.75}},
              "served": True}  # fmt: skip
    (folder / "fast-task.json").write_text(json.dumps(report))
    share, drop = frontier.continued_point(report, uncompressed)
    assert share == pytest.approx(0.1)
    assert drop == pytest.approx(-5.0)
    assert frontier.plot("sw", folder) == folder / "frontier.png"
    assert (folder / "frontier.png").stat().st_size > 10_000
    found = [("small: vocab", 0.2, -10.0, False), ("fast", share, drop, True)]
    assert frontier.frontier(found) == [(share, drop)]  # fewer parameters and a smaller drop
