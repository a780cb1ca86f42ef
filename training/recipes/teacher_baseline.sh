#!/usr/bin/env bash
# The English sentiment teacher (MiniLM-L6) and the zero-shot multilingual baseline
# (e5-small), fine-tuned on SemEval-2017 with the same budget, then evaluated.
# Each model's learning rate is chosen on semeval2017-val (English) among LRS; the test
# and the Vietnamese sets are only scored, never used to choose.
#   training/recipes/teacher_baseline.sh [DATA_ROOT] [WORK_DIR] [REPORTS_DIR]
# EPOCHS, LRS, PARALLEL=1 (run the four fine-tunes at once, e.g. on a GPU) are settings.
set -euo pipefail
data=${1:-../shared/data}
work=${2:-runs/teacher-baseline}
reports=${3:-reports}
epochs=${EPOCHS:-3}
lrs=${LRS:-"5e-5 1e-4"}
sem=$data/en-sentiment
mkdir -p "$work" "$reports"

python3 -m training import minilm --out "$work/minilm"
python3 -m training import e5-small --out "$work/e5-small"

run() {  # name model lr [extra flags]
    python3 -m training finetune --model "$work/$2" --train "$sem/semeval2017-train.tsv" \
        --val "$sem/semeval2017-val.tsv" --out "$work/$1-lr$3" --lr "$3" --epochs "$epochs" \
        --batch-size 32 --max-length 128 ${LIMIT:+--limit "$LIMIT"} "${@:4}" \
        > "$work/$1-lr$3.log" 2>&1
}
pids=()
for lr in $lrs; do
    if [ "${PARALLEL:-0}" = 1 ]; then
        run teacher minilm "$lr" --threads 4 & pids+=($!)
        run baseline e5-small "$lr" --text-prefix "query: " --freeze-embeddings --threads 4 &
        pids+=($!)
    else
        run teacher minilm "$lr"
        run baseline e5-small "$lr" --text-prefix "query: " --freeze-embeddings
    fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

pick() {  # the run of this model with the best validation macro-F1
    python3 - "$work" "$1" <<'PY'
import json, pathlib, sys
work, name = pathlib.Path(sys.argv[1]), sys.argv[2]
runs = {p.parent: json.loads(p.read_text())["best_val_macro_f1"]
        for p in work.glob(f"{name}-lr*/finetune-report.json")}
print(max(runs, key=runs.get))
PY
}
teacher=$(pick teacher)
baseline=$(pick baseline)
python3 - "$work" "$reports/finetune-selection.json" "$teacher" "$baseline" <<'PY'
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
runs = {p.parent.name: json.loads(p.read_text()) for p in sorted(work.glob("*/finetune-report.json"))}
out.write_text(json.dumps({"chosen_teacher": pathlib.Path(sys.argv[3]).name,
                           "chosen_baseline": pathlib.Path(sys.argv[4]).name,
                           "chosen_on": "semeval2017-val macro-F1",
                           "runs": runs}, indent=2) + "\n")
PY
python3 -m training evaluate --model "$teacher" --data "$sem/semeval2017-test.tsv" \
    --report "$reports/teacher-minilm-semeval.json"
python3 -m training evaluate --model "$baseline" --text-prefix "query: " \
    --data "$sem/semeval2017-test.tsv" --report "$reports/baseline-e5-semeval.json"
python3 -m training evaluate --model "$baseline" --text-prefix "query: " \
    --data "$data/vi-sentiment/vsfc.csv" "$data/vi-sentiment/viocd.csv" \
    "$data/vi-sentiment/vlsp.csv" --report "$reports/baseline-e5-zero-shot-vi.json"
echo "teacher: $teacher"
echo "baseline: $baseline"
