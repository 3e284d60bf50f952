#!/usr/bin/env bash
# How much the full-range HU CT of ../shared/data/real moves from one trained model to another: each MODEL
# (run directory, exported model, .keras or .tflite) segments it through `cdseg predict`, and `cdseg evaluate`
# scores it against its reference (TotalSegmentator's output: liver 5, kidneys 2 and 3, spleen 1), as
# scripts/evaluate_bundled_model.sh does for the bundled model.
#   scripts/check_real_ct_across_models.sh OUT.json MODEL [MODEL ...]
# OUT.json: per model, Dice, volume difference (RVD %), precision and recall per organ, and the quality verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OUT.json MODEL [MODEL ...]" >&2; exit 2; }
OUT=$1; shift
REAL=../shared/data/real
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

number=0
for model in "$@"; do
  number=$((number + 1))
  echo "[$number/$#] $model" >&2
  cdseg predict "$REAL/ct_abdomen_3mm.nii.gz" --model "$model" -o "$WORK/$number/seg.nii.gz" >/dev/null
  cdseg evaluate --pred "$WORK/$number/seg.nii.gz" --ref "$REAL/ct_abdomen_3mm_organs.nii.gz" --no-overlays \
    --labels liver=1:5,right_kidney=2:2,left_kidney=3:3,spleen=4:1 --out "$WORK/$number/eval" >/dev/null
  echo "$model" > "$WORK/$number/model.txt"
done

python - "$WORK" "$OUT" "$#" <<'EOF'
import json, sys
from pathlib import Path

from keras_cdseg.io_utils import write_json_atomic

work, out, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
fields = ("dice", "rvd_percent", "precision", "recall")
models = []
for number in range(1, count + 1):
    case = json.loads((work / str(number) / "eval" / "report.json").read_text())["cases"][0]
    quality = json.loads((work / str(number) / "seg.json").read_text()).get("quality") or {}
    models.append({
        "model": (work / str(number) / "model.txt").read_text().strip(),
        "organs": {organ: {f: metrics.get(f) for f in fields} for organ, metrics in case["classes"].items()},
        "quality_verdict": quality.get("verdict"),
    })
    organs = models[-1]["organs"]
    print(models[-1]["model"], " ".join(f"{o} {m['dice']:.3f} ({m['rvd_percent']:+.0f} %)" for o, m in organs.items()))
write_json_atomic(out, {"scan": "../shared/data/real/ct_abdomen_3mm.nii.gz", "models": models})
print(f"wrote {out}")
EOF
