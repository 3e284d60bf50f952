"""Replaces the bundled model's quality calibration (quality.json) without touching its weights.

    python scripts/calibrate_from_folds.py docs/results/real_abdomen_5000_landmarks --out /tmp/quality.json
    python scripts/refresh_bundled_quality.py /tmp/quality.json [--dest keras_cdseg/pretrained]

For a calibration made again from the same folds (e.g. with fields a newer package reads, such as every organ's
volume range for the organ-level checks), where retraining and rebundling (scripts/train_bundled_model.sh)
would give the same weights. The calibration must be about the bundled model's organ and labels. Writes
model/quality.json, model.json's `quality` and bundle.json's checksums (each atomically; the version stays,
the digest `cdseg info` prints changes, and bundle.json records when the calibration was replaced). The
bundle must still load and verify afterwards (`cdseg models --verify`).
"""

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "keras_cdseg" / "pretrained"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("quality_json", type=Path, help="the new calibration (scripts/calibrate_from_folds.py --out)")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: keras_cdseg/pretrained/")
    args = parser.parse_args(argv)
    from keras_cdseg.errors import InputError

    try:
        record = refresh_quality(args.quality_json, args.dest)
    except InputError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print(f"{record['name']} v{record['version']}: quality.json replaced; sha256 {record['sha256'][:12]}")
    return 0


def refresh_quality(quality_json, dest=DEFAULT_DEST):
    """Writes `quality_json` into the bundle at `dest` and updates its model card and manifest; returns bundle.json."""
    from keras_cdseg.config import load_json
    from keras_cdseg.errors import InputError
    from keras_cdseg.inference.quality.assess import quality_card
    from keras_cdseg.inference.quality.estimate import QUALITY_JSON, organ_value_of, read_calibration
    from keras_cdseg.io_utils import write_json_atomic
    from keras_cdseg.model_card import MODEL_JSON, write_model_card
    from keras_cdseg.pretrained import BUNDLE_JSON, bundled_model, files_sha256, model_files, verify_bundle

    bundle = bundled_model(dest)
    if bundle is None:
        raise InputError(dest, f"no bundled model ({BUNDLE_JSON})")
    calibration = read_calibration(quality_json)
    if calibration is None:
        raise InputError(quality_json, "no such file")
    labels = bundle.record["labels"]
    wanted = organ_value_of(labels)
    if calibration.get("organ", {}).get("value") != wanted:
        raise InputError(quality_json, f"calibrated for organ {calibration.get('organ')}, the bundled model's is {wanted}")
    model_dir = Path(dest) / bundle.record["model_dir"]
    write_json_atomic(model_dir / QUALITY_JSON, calibration)
    card = load_json(model_dir / MODEL_JSON)
    card["quality"] = {**quality_card(calibration), "discriminator": card.get("quality", {}).get("discriminator")}
    write_model_card(model_dir, card)
    files = model_files(model_dir)
    record = {**bundle.record, "files": files, "sha256": files_sha256(files),
              "bytes": sum((model_dir / f).stat().st_size for f in files),
              "quality_refreshed_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    write_json_atomic(Path(dest) / BUNDLE_JSON, record)
    problems = verify_bundle(bundled_model(dest))
    if problems:
        raise InputError(Path(dest) / BUNDLE_JSON, f"the bundle does not verify after the refresh: {problems}")
    return record


if __name__ == "__main__":
    sys.exit(main())
