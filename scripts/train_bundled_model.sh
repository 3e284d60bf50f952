#!/usr/bin/env bash
# Rebuilds the model bundled in keras_cdseg/pretrained/ from the 34 real scans, with the same settings and seed:
#   scripts/train_bundled_model.sh [DATA_DIR] [RUN_DIR]
# 1. imports ../shared/data/abdomen_ct_mr (20 BTCV CT + 14 CHAOS T2 MR) into DATA_DIR (MSD layout),
# 2. trains with the recipe below + scripts/bundled_model.yaml (the run calibrates its quality estimate),
# 3. exports the run (saved_models/) and bundles it into the package (scripts/bundle_model.py).
# Then rebuild the wheel; MODEL_CARD.md's numbers come from `cdseg experiment cross-domain` on the same data.
set -euo pipefail
cd "$(dirname "$0")/.."

RECIPE=real-cpu
SOURCE=../shared/data/abdomen_ct_mr
DATA=${1:-/work/data/abdomen}
RUN=${2:-runs/bundled_model}

if [ ! -f "$DATA/dataset.json" ]; then
  cdseg preprocess "$SOURCE/ct" "$SOURCE/mr" "$DATA" --modality CT --modality MR \
    --labels liver=1,right_kidney=2,left_kidney=3,spleen=4
fi
if [ -f "$RUN/config.json" ]; then
  cdseg train --resume "$RUN"                      # an interrupted run continues bit-for-bit
else
  cdseg train --data "$DATA" --recipe "$RECIPE" --seed 0 --config scripts/bundled_model.yaml --out "$RUN"
fi
cdseg export "$RUN" --root saved_models --name cdseg-abdomen-ct-mr
python scripts/bundle_model.py "$RUN" --format keras --name cdseg-abdomen-ct-mr
