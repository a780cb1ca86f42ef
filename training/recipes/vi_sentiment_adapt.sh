#!/usr/bin/env bash
# The Vietnamese sentiment model's label-free improvements, each step a command and each an
# ablation row (README "The Vietnamese sentiment model"). Starts from the sources of a KDA
# student as `kda pack` writes them (SOURCES; the first release's were
# models/sources/vi-sentiment, before the served model became the adapted one); reads no
# Vietnamese sentiment label: every choice is made on the held-out slice of vi-unlabeled.
#   SOURCES=DIR training/recipes/vi_sentiment_adapt.sh [DATA_ROOT] [WORK_DIR]
# About 75 minutes on 2 CPU cores (probe features 25, ensemble labels 15, each adaptation
# round 20-25); ROUNDS=2 (the default) adds a self-training round, ROUNDS=1 leaves it out;
# PROBE=DIR reuses a finished probe run instead of fitting one.
set -euo pipefail
data=${1:-../shared/data}
work=${2:-runs}
rounds=${ROUNDS:-2}
sources=${SOURCES:?"SOURCES: the KDA student's packed sources"}
probe=${PROBE:-$work/probe-e5}
unlabeled=("$data"/vi-unlabeled/*.txt)
reports=${REPORTS:-reports/kda/vi-adapt}
mkdir -p "$work/sources" "$work/bundles" "$reports"

sources_with() {  # NEW_DIR FROM_DIR JSON_FIELDS: a copy of committed sources with fields set
    rm -rf "$1"; cp -r "$2" "$1"
    python3 training/recipes/source_fields.py "$1" "$3"
}

# 1. the teacher's normalisation on the Vietnamese side (NFC, lowercase), nothing retrained
sources_with "$work/sources/vi-sentiment-lower" "$sources" \
    '{"preprocessing": {"lowercase": true, "unicode_normalization": "NFC"}}'
python3 -m training build "$work/sources/vi-sentiment-lower" \
    --out "$work/bundles/vi-sentiment-lower" --record

# 2. the zero-shot probe: frozen e5-small + a linear layer on English (SemEval, airline
#    tweets, SST-2 over its two polar logits)
if [ ! -f "$probe/probe.json" ]; then
    python3 -m training probe fit training/recipes/probe-e5-sentiment.yaml --out "$probe"
fi
cp "$probe/probe.json" "$reports/probe-e5.json"

# 3. the ensemble's soft labels (5% held out): each member moved to equal classes, then
#    averaged; EM's prior estimates are reported beside (and kept as a row of their own)
python3 -m training ensemble label --members "$work/bundles/vi-sentiment-lower" \
    "$probe" --texts "${unlabeled[@]}" --out "$work/vi-ensemble" --target-prior uniform
cp "$work/vi-ensemble/ensemble-report.json" "$reports/ensemble-1.json"
python3 -m training ensemble label --members "$work/bundles/vi-sentiment-lower" \
    "$probe" --texts "${unlabeled[@]}" --out "$work/vi-ensemble-em" --target-prior em
cp "$work/vi-ensemble-em/ensemble-report.json" "$reports/ensemble-em.json"

# 4. the student alone, its logits shifted from its training prior to equal classes
#    ("balanced"), or to EM's estimate on vi-unlabeled ("em")
for target in balanced em; do
    report=$work/vi-ensemble/ensemble-report.json
    [ "$target" = em ] && report=$work/vi-ensemble-em/ensemble-report.json
    shift=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['members'][0]['logit_shift'])" "$report")
    sources_with "$work/sources/vi-sentiment-$target" "$work/sources/vi-sentiment-lower" \
        "{\"logit_shift\": $shift}"
    python3 -m training build "$work/sources/vi-sentiment-$target" \
        --out "$work/bundles/vi-sentiment-$target" --record
done

# 5. in-domain adaptation on the ensemble's labels (vocabulary widened, prior-corrected)
python3 -m training kda adapt training/recipes/kda-vi-adapt.yaml --out "$work/kda-vi-adapt-1" \
    --sources "$work/sources/vi-sentiment-lower" --labels "$work/vi-ensemble"
cp "$work/kda-vi-adapt-1/adapt-report.json" "$reports/adapt-1.json"
python3 -m training kda pack-adapted "$work/kda-vi-adapt-1" \
    --out "$work/sources/vi-sentiment-adapt-1" --reference "$data/parallel-en-vi/tatoeba.tsv:vi"
python3 -m training build "$work/sources/vi-sentiment-adapt-1" \
    --out "$work/bundles/vi-sentiment-adapt-1" --record

# 6. self-training: the adapted student replaces the old one in the ensemble, and learns again
#    (one epoch a round)
for round in $(seq 2 "$rounds"); do
    previous=$((round - 1))
    python3 -m training ensemble label --members "$work/bundles/vi-sentiment-adapt-$previous" \
        "$probe" --texts "${unlabeled[@]}" --out "$work/vi-ensemble-$round" \
        --target-prior uniform
    python3 -m training kda adapt training/recipes/kda-vi-adapt.yaml \
        --out "$work/kda-vi-adapt-$round" --sources "$work/sources/vi-sentiment-adapt-$previous" \
        --labels "$work/vi-ensemble-$round" --epochs 1
    cp "$work/vi-ensemble-$round/ensemble-report.json" "$reports/ensemble-$round.json"
    cp "$work/kda-vi-adapt-$round/adapt-report.json" "$reports/adapt-$round.json"
    python3 -m training kda pack-adapted "$work/kda-vi-adapt-$round" \
        --out "$work/sources/vi-sentiment-adapt-$round" \
        --reference "$data/parallel-en-vi/tatoeba.tsv:vi"
    python3 -m training build "$work/sources/vi-sentiment-adapt-$round" \
        --out "$work/bundles/vi-sentiment-adapt-$round" --record
done

# 7. the choice, made before any evaluation set is scored: the single-graph student that
#    follows the first ensemble most closely on its held-out slice
candidates=("$work/bundles/vi-sentiment-lower" "$work/bundles/vi-sentiment-balanced")
candidates+=("$work/bundles/vi-sentiment-em")
for round in $(seq 1 "$rounds"); do candidates+=("$work/bundles/vi-sentiment-adapt-$round"); done
python3 -m training ensemble heldout --labels "$work/vi-ensemble" --models "${candidates[@]}" \
    --report "$reports/choice.json"
