"""Holds out a random, modality-stratified test split of an imported dataset (dataset.json `test` list).

    python scripts/make_dev_split.py DATASET_DIR [--ct 4] [--mr 3] [--seed 2026]

Used to train the bundled model on part of the 34 real scans and keep the rest for an honest held-out
measurement (scripts/train_bundled_model.sh). The cases are drawn at random with the seed (in case-id order
per modality), never picked by hand. Rewrites DATASET_DIR/dataset.json atomically; the scans are untouched.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from keras_cdseg.io_utils import write_json_atomic


def split(entries, counts, seed):
    rng = np.random.default_rng(seed)
    held_out = []
    for modality, count in counts:
        cases = sorted((e for e in entries if e.get("modality") == modality), key=lambda e: Path(e["image"]).name)
        if count >= len(cases):
            raise SystemExit(f"{modality}: cannot hold out {count} of {len(cases)} cases")
        chosen = set(rng.choice(len(cases), count, replace=False).tolist())
        held_out += [e for i, e in enumerate(cases) if i in chosen]
    return [e for e in entries if e not in held_out], held_out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--ct", type=int, default=4)
    parser.add_argument("--mr", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    path = args.dataset / "dataset.json"
    record = json.loads(path.read_text())
    entries = record["training"] + record.get("test", [])
    train, test = split(entries, [("CT", args.ct), ("MR", args.mr)], args.seed)
    record.update(training=train, test=test, numTraining=len(train), numTest=len(test))
    write_json_atomic(path, record)
    print(f"{path}: {len(train)} training, {len(test)} test cases: " + ", ".join(Path(e["image"]).name for e in test))


if __name__ == "__main__":
    main()
