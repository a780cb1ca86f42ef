#!/usr/bin/env bash
# Does the shared training loop change what KDA learns? One epoch of a KDA recipe on the code
# as it was before the loop (BEFORE, a commit) into runs/kda-loop-check-before, and one epoch
# of the same recipe on this checkout into runs/kda-loop-check-after; prints both held-out
# curves. Same pairs, balance, split, seed and optimiser. TEACHER=dir replaces the recipe's
# teacher (e.g. one restored by `python -m training kda teacher models/sources/vi-sentiment`).
#   [TEACHER=dir] training/recipes/kda_loop_check.sh CONFIG [BEFORE]
# About 20 minutes on 2 CPU cores (per side: pair labels 3.5, one epoch 5; reports/training-loop.md).
set -euo pipefail
config=${1:?usage: kda_loop_check.sh CONFIG [BEFORE]}
before=${2:-4b8a9a4}   # the last commit before training/loop.py
runs=$PWD/runs
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree"' EXIT
git worktree add --detach "$tree" "$before" >/dev/null

side() {  # name: the recipe at one epoch, paths absolute (the old tree runs elsewhere)
    mkdir -p "$runs/kda-loop-check-$1"
    python3 - "$config" "$runs/kda-loop-check-$1" "$PWD" "${TEACHER:-}" <<'PY'
import sys, pathlib, yaml
config, out, root, teacher = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
settings = yaml.safe_load(open(config))
settings["epochs"] = 1
settings["out"] = str(out)
settings["bundle"]["out"] = str(out / "bundle")

def absolute(value):
    return str((root / value).resolve()) if not str(value).startswith(("/", "~")) else value

settings["teacher"] = absolute(teacher or settings["teacher"])
for item in settings["parallel"]:
    for key in ("path", "target_path"):
        if key in item:
            item[key] = absolute(item[key])
(out / "config.yaml").write_text(yaml.safe_dump(settings))
PY
}
side before
side after
(cd "$tree" && python3 -m training kda run "$runs/kda-loop-check-before/config.yaml" --no-export)
python3 -m training kda run "$runs/kda-loop-check-after/config.yaml" --no-export
for name in before after; do
    python3 -c 'import json, sys; r = json.load(open(sys.argv[2]))
print(sys.argv[1], json.dumps({k: r.get(k) for k in ("initial_heldout", "history", "pairs")}))' \
        "$name" "$runs/kda-loop-check-$name/kda-report.json"
done
