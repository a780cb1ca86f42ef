"""A baseline's heads on the choosing split: each seed at the chosen rate, and the seeds with
their logits averaged (the teacher `teachers: seeds` makes), to see on dev whether the
ensemble is the better teacher before a recipe uses it.

    python training/recipes/teacher_seeds.py training/recipes/tasks-mt-ensemble.yaml [TASK]

Reads the baseline's heads the recipe's `out` folder holds (`<out>/baseline/<task>/`, made by
`python -m training compress tasks RECIPE --baseline`); TASK defaults to `topic`. About a
minute per recipe here (four copies of e5-small on 99 texts).
"""

from __future__ import annotations

import sys
from pathlib import Path

from training.compress.head import MeanLogits
from training.compress.tasks import TaskRun, TasksConfig, load_baseline


def main(argv: list[str]) -> None:
    if len(argv) not in (1, 2):
        raise SystemExit("usage: teacher_seeds.py RECIPE [TASK]")
    config = TasksConfig.from_file(Path(argv[0]))
    task = argv[1] if len(argv) == 2 else "topic"
    if config.baseline is None:
        raise SystemExit(f"{argv[0]}: names no baseline model")
    if task not in config.tasks:
        raise SystemExit(f"{argv[0]}: no task {task!r}; configured: {sorted(config.tasks)}")
    teacher = (config.baseline, config.baseline, *load_baseline(config.baseline))
    run = TaskRun(config, task, teacher, config.out / "baseline" / task)
    run.chosen()  # names the command that makes the heads where they are missing
    choose = run._encode(run.choose)
    records = run.seeds()
    heads = [run.head_of(record) for record in records]

    def show(name: str, model: object) -> None:
        figures = run.score(choose, run.choose[1], model)  # type: ignore[arg-type]
        print(f"{name}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in figures.items()))

    for record, head in zip(records, heads, strict=True):
        show(f"seed {record['seed']} at {record['learning_rate']:g}", head)
    show("seeds' logits averaged", MeanLogits(heads))


if __name__ == "__main__":
    main(sys.argv[1:])
