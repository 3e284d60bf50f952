#!/usr/bin/env bash
# Rebuilds the model bundled in keras_cdseg/pretrained/ from the 34 real scans, with the same settings and seed:
#   scripts/train_bundled_model.sh [DATA_DIR] [RUN_DIR]
# 1. imports ../shared/data/abdomen_ct_mr (20 BTCV CT + 14 CHAOS T2 MR) into DATA_DIR (MSD layout),
# 2. runs (or, when committed, skips) the four folds of the cross-domain benchmark with exactly the settings of
#    step 3 (the method, 5000 steps, scripts/bundled_model.yaml): the models that calibrate the quality estimate
#    on scans they never trained on, and give the model card's accuracy,
# 3. trains on all 34 scans with the recipe below + scripts/bundled_model.yaml (resumes when interrupted),
# 4. calibrates the run's quality estimate on the benchmark's folds (RUN/quality.json),
# 5. exports the run (saved_models/) and bundles it into the package (scripts/bundle_model.py).
# Then rebuild the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE=real-cpu
SOURCE=../shared/data/abdomen_ct_mr
DATA=${1:-/work/data/abdomen}
RUN=${2:-runs/bundled_model}
CONFIG=scripts/bundled_model.yaml
BENCHMARK=docs/results/real_abdomen_5000_landmarks  # the folds of this config (v5 and earlier: real_abdomen_5000)

if [ ! -f "$DATA/dataset.json" ]; then
  cdseg preprocess "$SOURCE/ct" "$SOURCE/mr" "$DATA" --modality CT --modality MR \
    --labels liver=1,right_kidney=2,left_kidney=3,spleen=4
fi
cdseg experiment cross-domain --data "$DATA" --out "$BENCHMARK" --folds 4 --recipe "$RECIPE" --config "$CONFIG" \
  --steps 5000 --seed 0 --variants method
if [ -f "$RUN/config.json" ]; then
  cdseg train --resume "$RUN"                      # an interrupted run continues bit-for-bit
else
  cdseg train --data "$DATA" --recipe "$RECIPE" --seed 0 --config "$CONFIG" --out "$RUN"
fi
python scripts/calibrate_from_folds.py "$BENCHMARK" --out "$RUN/quality.json"
cdseg export "$RUN" --root saved_models --name cdseg-abdomen-ct-mr
python scripts/bundle_model.py "$RUN" --format keras --name cdseg-abdomen-ct-mr
