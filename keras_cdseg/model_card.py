"""The model card: what a client needs besides the weights, as written to and read from `model.json`.

Read by inference (every predictor carries a card) and written by deploy (`cdseg export`), so it lives
below both, like `keras_cdseg.run_dir`: neither package imports the other for it.

    saved_models/<name>/<version>/model.json   {"format": "keras_cdseg.model/1", "preprocessing": {...},
                                                "labels": {...}, "class_names": [...], "postprocessing": {...},
                                                "source": {...}, "versions": {...}, "quality": {...}}
"""

import dataclasses
import hashlib
import json
from pathlib import Path

from keras_cdseg.config import DataConfig, from_dict, load_json
from keras_cdseg.errors import InputError
from keras_cdseg.run_dir import is_run_dir, load_run

MODEL_JSON = "model.json"
MODEL_FORMAT = "keras_cdseg.model/1"
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "slices"


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """What a client needs to know about a model besides its weights (the content of `model.json`).

    Args:
        data_config: DataConfig. How volumes are prepared for this model.
        labels: dict. Label name -> value, including background 0.
        class_names: list of str. Names indexed by output channel.
        largest_component_classes: tuple of int. Class values post-processed to their largest 3D component.
        record: dict. The whole `model.json` content (or the equivalent for an unexported model).
    """

    data_config: DataConfig
    labels: dict
    class_names: list
    largest_component_classes: tuple
    record: dict

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def uses_default_preprocessing(self):
        """True when no training config was found and the preprocessing is the `DataConfig` defaults."""
        source = self.record.get("source") or {}
        return "defaults" in (self.record.get("data_config_source"), source.get("data_config_source"))


# Organs that are one connected body in every patient; the paper post-processes the liver, and the same
# reasoning holds for the spleen and each kidney (a horseshoe kidney spans both labels; an accessory spleen is
# a few mL and is lost).
SINGLE_COMPONENT_ORGANS = ("liver", "spleen", "right_kidney", "left_kidney", "kidney_right", "kidney_left")


def default_largest_component_classes(labels):
    """Values of the classes kept to their largest 3D component: those named in `SINGLE_COMPONENT_ORGANS`."""
    return tuple(int(labels[name]) for name in sorted(labels, key=labels.get) if name in SINGLE_COMPONENT_ORGANS)


def read_model_card(path):
    """Reads a `model.json` (or the one inside a version directory) into a `ModelCard`; InputError if invalid."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_JSON
    if not path.is_file():
        raise InputError(path, f"{MODEL_JSON} not found (export the model with `cdseg export`)")
    record = load_json(path)
    if record.get("format") != MODEL_FORMAT:
        found = record.get("format")
        raise InputError(path, f"not a keras_cdseg model.json (format {found!r}, expected {MODEL_FORMAT!r})")
    try:
        data_config = from_dict(DataConfig, record["preprocessing"]["data_config"], path)
        labels = {str(k): int(v) for k, v in record["labels"].items()}
        class_names = [str(n) for n in record["class_names"]]
        largest = tuple(int(v) for v in record["postprocessing"]["largest_component_classes"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"incomplete model.json ({type(e).__name__}: {e})") from None
    return ModelCard(data_config, labels, class_names, largest, record)


def write_model_card(directory, record):
    """Writes `record` as `directory/model.json` atomically; returns its path (ValueError for a foreign format)."""
    from keras_cdseg.io_utils import write_json_atomic

    if record.get("format") != MODEL_FORMAT:
        raise ValueError(f"a model card needs format {MODEL_FORMAT!r}. Received: format={record.get('format')!r}")
    path = Path(directory) / MODEL_JSON
    write_json_atomic(path, record)
    return path


def card_from_run(run_dir):
    """The `ModelCard` of a run directory (its config.json), without exporting anything."""
    run = load_run(run_dir)
    source = {"kind": "run", "path": str(Path(run_dir).resolve()), "config_hash": config_hash(run.record["run"])}
    record = {"source": source, "model": run.record["run"].get("model")}
    largest = default_largest_component_classes(run.labels)
    return ModelCard(run.config.data, run.labels, run.class_names, largest, record)


def card_for_keras_file(path, input_shape, num_classes):
    """The `ModelCard` of a bare `.keras` file: from a run's config.json beside it, else from its input shape.

    Without a run config, the image size and context come from the model's input `(H, W, 2T+1)` and the
    spacing and percentiles are the `DataConfig` defaults; `record["data_config_source"]` says "defaults" so
    callers can warn. Labels are background/liver for 2 classes, else background/class1/class2/...
    """
    path = Path(path)
    if is_run_dir(path.parent):
        card = card_from_run(path.parent)
        return dataclasses.replace(card, record={**card.record, "data_config_source": "run"})
    height, _, num_channels = input_shape
    if num_channels % 2 != 1:
        raise InputError(path, f"model input has {num_channels} channels; expected an odd number (2T+1)")
    data_config = DataConfig(image_size=int(height), context=(int(num_channels) - 1) // 2)
    class_names = ["background"] + (["liver"] if num_classes == 2 else [f"class{i}" for i in range(1, num_classes)])
    labels = {name: i for i, name in enumerate(class_names)}
    record = {"source": {"kind": "keras", "path": str(path.resolve()), "config_hash": None}, "model": None,
              "data_config_source": "defaults"}  # fmt: skip
    return ModelCard(data_config, labels, class_names, default_largest_component_classes(labels), record)


def config_hash(run_record):
    """sha256 of the run config as canonical JSON: equal hashes mean equal training settings."""
    return hashlib.sha256(json.dumps(run_record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_versions(model_dir):
    """Sorted integer versions (folder names) under `saved_models/<name>/`; hidden temporary folders are ignored."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def check_model_matches_card(input_shape, num_classes, card, source):
    """InputError if the network's input `(H, W, C)` or class count disagree with the card's preprocessing."""
    height, width, num_channels = (None if n is None else int(n) for n in input_shape)
    config = card.data_config
    if num_channels != config.num_channels:
        raise InputError(source, f"model input has {num_channels} channels but its config says context "
                                 f"T={config.context} ({config.num_channels} channels)")  # fmt: skip
    for size in (height, width):
        if size is not None and size != config.image_size:
            raise InputError(source, f"model input is {height}x{width} but its config says "
                                     f"image_size {config.image_size}")  # fmt: skip
    if int(num_classes) != card.num_classes:
        raise InputError(source, f"model outputs {num_classes} classes but its config names {card.num_classes} "
                                 f"({', '.join(card.class_names)})")  # fmt: skip
