#!/usr/bin/env bash
# Serve a candidate of training/recipes/vi_sentiment_adapt.sh as the Vietnamese sentiment model:
# its sources become models/sources/vi-sentiment, the bundle is rebuilt from them exactly as
# `make serve` does, scored (fp32 and the int8 variant a CPU serves), and the figures recorded
# in the sources so every rebuild's manifest carries them (and the real test checks them).
#   training/recipes/vi_sentiment_release.sh SOURCES_DIR [DATA_ROOT] [REPORTS_DIR]
# About 5 minutes on 2 CPU cores.
set -euo pipefail
candidate=${1:?usage: vi_sentiment_release.sh SOURCES_DIR [DATA_ROOT] [REPORTS_DIR]}
data=${2:-../shared/data}
reports=${3:-reports/kda}
src=models/sources/vi-sentiment
bundle=models/vi-sentiment
sets=("$data/vi-sentiment/vsfc.csv" "$data/vi-sentiment/viocd.csv" "$data/vi-sentiment/vlsp.csv")

if [ "$(realpath "$candidate")" != "$(realpath "$src")" ]; then
    rm -rf "$src"
    cp -r "$candidate" "$src"
fi
python3 -m training build "$src" --out "$bundle" --record
for variant in fp32 int8; do
    python3 -m training evaluate --model "$bundle" --variant "$variant" --data "${sets[@]}" \
        --report "$reports/vi-sentiment-$variant.json"
done
python3 - "$src/source.json" "$reports/vi-sentiment-fp32.json" "$reports/vi-sentiment-int8.json" <<'PY'
import json, pathlib, sys
from training.evaluate.records import records
path, *reports = sys.argv[1:]
source = json.loads(open(path).read()) | {"evaluation": records([pathlib.Path(r) for r in reports])}
open(path, "w").write(json.dumps(source, indent=2, ensure_ascii=False))
PY
python3 -m training build "$src" --out "$bundle" --record
