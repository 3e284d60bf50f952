"""The pretrained CT + MR model shipped inside the package (package data of the wheel; MODEL_CARD.md).

    keras_cdseg/pretrained/
      bundle.json      {"format", "name", "version", "model_format", "weights_dtype", "placeholder",
                        "model_dir", "files": {relative path: sha256}, "sha256", "source", ...}
      MODEL_CARD.md    training data and licences, intended use, accuracy, what the model has not seen
      model/           what `load_predictor` loads: a run-like folder (config.json, best_generator.keras,
                       quality.json, discriminator.keras) or an exported version directory (SavedModel,
                       model.json, feature_statistics.json, quality.json, discriminator.keras); either may
                       also hold the same network as `<name>.tflite` (bundle.json "tflite") with its
                       model.json and feature_statistics.json: what `cdseg predict` runs, on LiteRT

`scripts/bundle_model.py` writes it; `sha256` is the digest of the sorted `files` lines, so one value names
the whole model (printed by `cdseg info` and `cdseg models`). Reading the manifest needs only the standard
library: `cdseg info` stays free of TensorFlow.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

from keras_cdseg.model_card import file_sha256

PRETRAINED_DIR = Path(__file__).resolve().parent
BUNDLE_JSON = "bundle.json"
BUNDLE_FORMAT = "keras_cdseg.bundle/1"
MODEL_CARD_MD = "MODEL_CARD.md"


@dataclasses.dataclass(frozen=True)
class BundledModel:
    """The model shipped in the package, as its `bundle.json` describes it.

    Args:
        name: str. Model name.
        version: int. Bundle version (raised by every rebuild).
        path: Path. The folder `load_predictor` takes.
        model_format: str. "keras" (run-like folder) or "saved_model" (exported version directory).
        sha256: str. Digest of every file of the model (see `files_sha256`).
        placeholder: bool. True for a stand-in (a tiny test model), never for a released model.
        record: dict. The whole `bundle.json`.
        tflite: Path or None. The same network as a TFLite file with its quality probe, if bundled.
    """

    name: str
    version: int
    path: Path
    model_format: str
    sha256: str
    placeholder: bool
    record: dict
    tflite: Path | None = None

    @property
    def predict_path(self):
        """What `cdseg predict` loads: the TFLite file when there is one, else `path`.

        The same weights and quality probe either way (scripts/bundle_model.py checks that they agree), but
        LiteRT needs neither TensorFlow nor Keras: no ~4 s import, two thirds of the memory (MODEL_CARD.md, speed).
        """
        return self.tflite if self.tflite is not None else self.path

    def describe(self):
        tag = ", PLACEHOLDER" if self.placeholder else ""
        runtime = ", run on LiteRT" if self.tflite is not None else ""
        return f"{self.name} v{self.version} ({self.model_format}{runtime}{tag}, sha256 {self.sha256[:12]})"


def bundled_model(root=PRETRAINED_DIR):
    """The `BundledModel` under `root`, or None when the package holds none (or an unreadable manifest)."""
    path = Path(root) / BUNDLE_JSON
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != BUNDLE_FORMAT:
        return None
    model_path = Path(root) / record.get("model_dir", "model")
    if not model_path.is_dir():
        return None
    tflite = model_path / record["tflite"] if record.get("tflite") else None
    if tflite is not None and not tflite.is_file():
        tflite = None  # a damaged bundle: `verify_bundle` names the missing file; the Keras model still runs
    return BundledModel(name=str(record.get("name")), version=int(record.get("version", 0)), path=model_path,
                        model_format=str(record.get("model_format")), sha256=str(record.get("sha256")),
                        placeholder=bool(record.get("placeholder")), record=record, tflite=tflite)  # fmt: skip


def model_files(model_dir):
    """`{relative posix path: sha256}` of every file under `model_dir`, sorted by path."""
    model_dir = Path(model_dir)
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(model_dir).as_posix(): file_sha256(p) for p in files}


def files_sha256(files):
    """One digest for a `{path: sha256}` mapping: sha256 of its `"<sha256>  <path>\\n"` lines in path order."""
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def verify_bundle(bundle):
    """Paths whose content differs from `bundle.json` (missing, changed or extra files); [] when intact."""
    expected = bundle.record.get("files") or {}
    found = model_files(bundle.path)
    return sorted(name for name in set(expected) | set(found) if expected.get(name) != found.get(name))


def bundle_summary(root=PRETRAINED_DIR):
    """What `cdseg info` prints about the bundled model: name, version, checksum; None without one."""
    bundle = bundled_model(root)
    if bundle is None:
        return None
    return {"name": bundle.name, "version": bundle.version, "sha256": bundle.sha256, "format": bundle.model_format,
            "weights_dtype": bundle.record.get("weights_dtype"), "placeholder": bundle.placeholder,
            "path": str(bundle.path), "tflite": None if bundle.tflite is None else str(bundle.tflite)}  # fmt: skip
