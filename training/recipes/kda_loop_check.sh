#!/usr/bin/env bash
# Does the shared training loop change what KDA learns? One epoch of a KDA recipe on the code
# as it was before the loop (BEFORE, a commit), into runs/kda-loop-check-before; compare its
# held-out curve with the first epoch of the same recipe on this checkout (its run's
# kda-report.json history). Same pairs, balance, split, seed and optimiser.
#   training/recipes/kda_loop_check.sh CONFIG [BEFORE]
# About 20 minutes on 2 CPU cores (pair labels 10, one epoch 8).
set -euo pipefail
config=${1:?usage: kda_loop_check.sh CONFIG [BEFORE]}
before=${2:-4b8a9a4}   # the last commit before training/loop.py
out=$PWD/runs/kda-loop-check-before
tree=$(mktemp -d)
trap 'git worktree remove --force "$tree"' EXIT
git worktree add --detach "$tree" "$before" >/dev/null
mkdir -p "$out"
python3 - "$config" "$out/config.yaml" "$PWD" <<'PY'
import sys, pathlib, yaml
config, target, root = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
settings = yaml.safe_load(open(config))
settings["epochs"] = 1
settings["out"] = str(target.parent)

def absolute(value):  # the old tree runs elsewhere: paths relative to this checkout
    return str((root / value).resolve()) if not str(value).startswith(("/", "~")) else value

settings["teacher"] = absolute(settings["teacher"])
for item in settings["parallel"]:
    for key in ("path", "target_path"):
        if key in item:
            item[key] = absolute(item[key])
target.write_text(yaml.safe_dump(settings))
PY
(cd "$tree" && python3 -m training kda run "$out/config.yaml" --no-export)
python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["history"]))' \
    "$out/kda-report.json"
