#!/usr/bin/env bash
# Package a finished KDA run as the served Vietnamese sentiment model: committed sources in
# models/sources/vi-sentiment (fp16 weights, kept pieces, settings), the bundle rebuilt from
# them exactly as `make serve` does, scored (fp32 and the int8 variant the CPU serves), and the
# figures recorded in the sources so every rebuild's manifest carries them.
#   training/recipes/kda_vi_release.sh RUN_DIR [DATA_ROOT] [REPORTS_DIR]
set -euo pipefail
run=${1:?usage: kda_vi_release.sh RUN_DIR [DATA_ROOT] [REPORTS_DIR]}
data=${2:-../shared/data}
reports=${3:-reports/kda}
src=models/sources/vi-sentiment
bundle=models/vi-sentiment
sets=("$data/vi-sentiment/vsfc.csv" "$data/vi-sentiment/viocd.csv" "$data/vi-sentiment/vlsp.csv")
reference=(--reference "$data/parallel-en-vi/tatoeba.tsv:vi" --bundle-from training/recipes/kda-vi-sentiment.yaml)

python3 -m training kda pack "$run" --out "$src" "${reference[@]}"
python3 -m training build "$src" --out "$bundle" --record
for variant in fp32 int8; do
    python3 -m training evaluate --model "$bundle" --variant "$variant" --data "${sets[@]}" \
        --report "$reports/vi-sentiment-$variant.json"
done
python3 -m training kda pack "$run" --out "$src" "${reference[@]}" \
    --evaluation "$reports/vi-sentiment-fp32.json" "$reports/vi-sentiment-int8.json"
python3 -m training build "$src" --out "$bundle" --record
