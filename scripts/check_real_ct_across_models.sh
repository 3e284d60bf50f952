#!/usr/bin/env bash
# How much the full-range HU CT of ../shared/data/real moves from one trained model to another: each MODEL
# (run directory, exported model, .keras or .tflite) segments it through `cdseg predict`, and `cdseg evaluate`
# scores it against its reference (TotalSegmentator's output: liver 5, kidneys 2 and 3, spleen 1), as
# scripts/evaluate_bundled_model.sh does for the bundled model.
#   scripts/check_real_ct_across_models.sh [--window LOW,HIGH] OUT.json MODEL [MODEL ...]
# --window LOW,HIGH: segment a copy of the scan clipped to that HU window instead (e.g. -125,275, the window
# BTCV's training CT were stored in), which tells how much of a model's error on it comes from the full-range
# intensity convention rather than from the anatomy or the reference (docs/results.md). The scan is not modified.
# OUT.json: per model, Dice, volume difference (RVD %), precision and recall per organ, and the quality verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=
if [ "${1:-}" = "--window" ]; then
  [[ "${2:-}" =~ ^-?[0-9]+,-?[0-9]+$ ]] || { echo "Error: --window: expected LOW,HIGH in HU (e.g. -125,275), got '${2:-}'" >&2; exit 2; }
  WINDOW=$2; shift 2
fi
[ $# -ge 2 ] || { echo "usage: $0 [--window LOW,HIGH] OUT.json MODEL [MODEL ...]" >&2; exit 2; }
OUT=$1; shift
REAL=../shared/data/real
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SCAN=$REAL/ct_abdomen_3mm.nii.gz
if [ -n "$WINDOW" ]; then
  python - "$SCAN" "$WORK/scan_windowed.nii.gz" "$WINDOW" <<'EOF'
import sys

import nibabel as nib
import numpy as np

source, target, window = sys.argv[1], sys.argv[2], sys.argv[3]
low, high = (float(v) for v in window.split(","))
if not low < high:
    sys.exit(f"Error: --window: LOW must be below HIGH, got {window}")
image = nib.load(source)
clipped = np.clip(np.asanyarray(image.dataobj), low, high).astype(np.float32)
nib.save(nib.Nifti1Image(clipped, image.affine, image.header), target)
EOF
  SCAN=$WORK/scan_windowed.nii.gz
fi

number=0
for model in "$@"; do
  number=$((number + 1))
  echo "[$number/$#] $model" >&2
  cdseg predict "$SCAN" --model "$model" -o "$WORK/$number/seg.nii.gz" >/dev/null
  cdseg evaluate --pred "$WORK/$number/seg.nii.gz" --ref "$REAL/ct_abdomen_3mm_organs.nii.gz" --no-overlays \
    --labels liver=1:5,right_kidney=2:2,left_kidney=3:3,spleen=4:1 --out "$WORK/$number/eval" >/dev/null
  echo "$model" > "$WORK/$number/model.txt"
done

python - "$WORK" "$OUT" "$#" "$WINDOW" <<'EOF'
import json, sys
from pathlib import Path

from keras_cdseg.io_utils import write_json_atomic

work, out, count, window = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fields = ("dice", "rvd_percent", "precision", "recall")
models = []
for number in range(1, count + 1):
    case = json.loads((work / str(number) / "eval" / "report.json").read_text())["cases"][0]
    # seg.json (`cdseg predict`'s statistics) holds one entry per case under "cases"
    [predicted] = json.loads((work / str(number) / "seg.json").read_text())["cases"].values()
    quality = predicted.get("quality") or {}
    models.append({
        "model": (work / str(number) / "model.txt").read_text().strip(),
        "organs": {organ: {f: metrics.get(f) for f in fields} for organ, metrics in case["classes"].items()},
        "quality_verdict": quality.get("verdict"),
        "estimated_dice": quality.get("estimated_dice"),
    })
    organs = models[-1]["organs"]
    print(models[-1]["model"], " ".join(f"{o} {m['dice']:.3f} ({m['rvd_percent']:+.0f} %)" for o, m in organs.items()))
hu_window = [float(v) for v in window.split(",")] if window else None  # None: the scan as given
write_json_atomic(out, {"scan": "../shared/data/real/ct_abdomen_3mm.nii.gz", "hu_window": hu_window, "models": models})
print(f"wrote {out}")
EOF
