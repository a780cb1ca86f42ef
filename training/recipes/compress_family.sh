#!/usr/bin/env bash
# One language's two topic students, small (<lang>-topic) and tiny (<lang>-topic-tiny): every
# stage of each (finished stages are skipped, distillations resume from their checkpoints),
# then both speed benchmarks and tables into reports/compress/<lang>/{small,tiny}.
#   training/recipes/compress_family.sh LANG
# CPU time here (2 cores): sw about 2.5 h in all (README "Compression" has each language's).
set -euo pipefail
lang=${1:?usage: compress_family.sh LANG}
reports=reports/compress/$lang
mkdir -p "$reports" runs/logs
for size in small tiny; do
    config=training/recipes/compress-$lang.yaml
    [ "$size" = tiny ] && config=training/recipes/compress-$lang-tiny.yaml
    run=runs/compress-$lang-$size
    python3 -m training compress run "$config" 2>&1 | tee -a "runs/logs/compress-$lang-$size.log"
    python3 benchmarks/compress_speed.py "$run" --no-engine --report "$reports/$size-speed.json"
    python3 -m training compress table "$run" --speed "$reports/$size-speed.json" \
        --out "$reports/$size"
done
