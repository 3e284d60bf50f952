"""Bundles a tiny untrained four-organ network as a PLACEHOLDER for the pretrained model.

    python scripts/make_placeholder_bundle.py

Only so the packaging machinery (wheel contents, the default-model order, `cdseg info` / `cdseg models`,
the wheel test) can be built and tested before the real model is trained; its segmentations are noise.
The real model replaces it with `scripts/train_bundled_model.sh` + `scripts/bundle_model.py`.
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bundle_model import DEFAULT_DEST, bundle_model  # noqa: E402

LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}


def make_placeholder_run(root, image_size=32, target_spacing_mm=8.0, seed=0):
    """A run directory with an untrained 5-class generator (4 base filters, depth 2): ~100 kB."""
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.models.segmenter import build_segmenter

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = build_segmenter((image_size, image_size, 3), num_classes=len(LABELS), base_filters=4, depth=2)
    model.save(root / "best_generator.keras")
    data = DataConfig(image_size=image_size, target_spacing_mm=target_spacing_mm, context=1)
    run = RunConfig(data_dir="placeholder (untrained)", data=data,
                    model=ModelConfig(num_classes=len(LABELS), base_filters=4, depth=2))  # fmt: skip
    record = {"run": run.to_dict(), "labels": LABELS, "class_names": list(LABELS)}
    (root / "config.json").write_text(json.dumps(record, indent=2))
    return root


def main():
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_placeholder_run(Path(tmp) / "placeholder_run")
        record = bundle_model(run_dir, DEFAULT_DEST, name="cdseg-placeholder", placeholder=True)
    print(json.dumps({k: record[k] for k in ("name", "version", "bytes", "sha256", "placeholder")}))


if __name__ == "__main__":
    main()
