#!/usr/bin/env bash
# Measures the bundled model (keras_cdseg/pretrained/) where the model card reports it, beside the
# cross-validation of its recipe (docs/results/real_abdomen):
#   scripts/evaluate_bundled_model.sh [OUT_DIR]        (default docs/results/bundled_model)
# 1. the full-range HU CT of ../shared/data/real through `cdseg predict` with no --model (the bundled model
#    unless CDSEG_MODEL or ./saved_models say otherwise: the script clears both), against its reference
#    labels (TotalSegmentator's output: liver 5, kidneys 2 and 3, spleen 1) -> OUT_DIR/realct_eval/,
# 2. the 4 CT (HU) + 4 MR test phantoms of `cdseg synth` (not real anatomy: a smoke check) -> OUT_DIR/phantoms/.
# Existing report directories are replaced only when the new report is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/results/bundled_model}
REAL=../shared/data/real
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
unset CDSEG_MODEL
mkdir -p "$WORK/cwd" "$OUT"

(cd "$WORK/cwd" && cdseg predict "$OLDPWD/$REAL/ct_abdomen_3mm.nii.gz" -o "$WORK/realct/seg.nii.gz")
cdseg evaluate --pred "$WORK/realct/seg.nii.gz" --ref "$REAL/ct_abdomen_3mm_organs.nii.gz" --no-overlays \
  --labels liver=1:5,right_kidney=2:2,left_kidney=3:3,spleen=4:1 --out "$WORK/realct_eval"
cp "$WORK/realct/seg.json" "$WORK/realct_eval/predict_statistics.json"

cdseg synth "$WORK/phantoms_data" --seed 0 --num-ct 5 --num-mr 5 --num-test 4 \
  --labels liver,right_kidney,left_kidney,spleen
cdseg evaluate --model keras_cdseg/pretrained/model --data "$WORK/phantoms_data" --split test --no-overlays \
  --out "$WORK/phantoms"

for report in realct_eval phantoms; do
  rm -rf "$OUT/$report.old" && { [ ! -e "$OUT/$report" ] || mv "$OUT/$report" "$OUT/$report.old"; }
  cp -r "$WORK/$report" "$OUT/$report" && rm -rf "$OUT/$report.old"
done
echo "wrote $OUT/realct_eval and $OUT/phantoms"
