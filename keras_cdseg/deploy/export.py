"""Exporting a trained generator for serving: SavedModel in the TF Serving layout, TFLite, and `model.json`.

    saved_models/<name>/<version>/            one integer version per export, never overwritten
      saved_model.pb  variables/  ...         signature serving_default: slices -> probabilities, labels
                                              segment_volume(_int16): volume, spacing_mm -> labels, volumes_ml
      model.json                              preprocessing, labels, post-processing, hashes, versions
      <name>.tflite  [<name>_float16.tflite  <name>_dynamic.tflite]

A version is built under a hidden temporary name beside its final place and renamed when complete, so TF
Serving (which only loads integer-named folders) never sees a half-written model. `model.json` is what lets
any client (TF Serving REST, TFLite, `cdseg predict`) prepare inputs exactly as in training.
"""

import dataclasses
import datetime
import hashlib
import json
import platform
import re
from pathlib import Path

from keras_cdseg.config import DataConfig, from_dict, to_dict
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_dir, write_json_atomic

MODEL_JSON = "model.json"
MODEL_FORMAT = "keras_cdseg.model/1"
SIGNATURE_NAME = "serving_default"
INPUT_NAME = "slices"
QUANTIZATIONS = ("float16", "dynamic")
PREPROCESSING_STEPS = (
    "reorient to RAS; clip to the volume's clip_percentiles and map linearly to [0, 1]; resample in-plane "
    "(linear, centre-aligned) to target_spacing_mm; centre pad/crop to image_size; axial slices as [S, H, W] "
    "with H along RAS x and W along RAS y; 2T+1 neighbouring slices as channels (edge slices repeated)"
)
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def default_largest_component_classes(labels):
    """The paper post-processes the liver only: `(value of "liver",)` if there is a liver class, else `()`."""
    return (int(labels["liver"]),) if "liver" in labels else ()


def read_model_card(path):
    """Reads a `model.json` (or the one inside a version directory) into a `ModelCard`; InputError if invalid."""
    from keras_cdseg.config import load_json

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


def card_from_run(run_dir):
    """The `ModelCard` of a run directory (its config.json), without exporting anything."""
    from keras_cdseg.run_dir import load_run

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
    from keras_cdseg.run_dir import is_run_dir

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


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Paths written by `export_model`.

    Args:
        version_dir: Path. `root/name/version`.
        version: int.
        model_json: Path.
        tflite_files: dict. Quantization ("none", "float16", "dynamic") -> path.
    """

    version_dir: Path
    version: int
    model_json: Path
    tflite_files: dict


def export_model(source, root="saved_models", name="cdseg", version=None, tflite=False, quantize=()):
    """Exports a run directory's best generator (or a `.keras` generator) as a new serving version.

    Args:
        source: path. A run directory (uses `best_generator.keras`, falling back to the last) or a `.keras`
            generator file.
        root: path. Export root; the model goes to `root/name/version`. Defaults to "saved_models".
        name: str. Model name (letters, digits, `_`, `-`, `.`). Defaults to "cdseg".
        version: int or None. None takes one more than the highest existing version (1 for the first).
        tflite: bool. Also write `<name>.tflite` (float32). Defaults to False.
        quantize: iterable of "float16" / "dynamic". Also write `<name>_<q>.tflite` (implies the float32 file).

    Returns:
        `ExportResult`.

    Raises:
        InputError: bad source, name, version or quantization, a model inconsistent with its config, or an
            existing version (an export never overwrites; nothing is written then).
    """
    quantize = tuple(dict.fromkeys(quantize or ()))
    bad = [q for q in quantize if q not in QUANTIZATIONS]
    if bad:
        raise InputError("--quantize", f"unknown quantization {bad[0]!r}; choose from {', '.join(QUANTIZATIONS)}")
    if not _NAME_PATTERN.match(str(name)):
        raise InputError("--name", f"model name must be letters, digits, '_', '-' or '.', got {name!r}")
    model_dir = Path(root) / name
    if version is None:
        version = (list_versions(model_dir) or [0])[-1] + 1
    if not (isinstance(version, int) and version > 0):
        raise InputError("--version", f"must be a positive integer, got {version!r}")
    version_dir = model_dir / str(version)
    if version_dir.exists():
        raise InputError(version_dir, "version already exists; exports never overwrite (omit --version for the next)")
    generator_path, model, card = _resolve_source(source)
    check_model_matches_card(model.input_shape[1:], model.output_shape[-1], card, generator_path)
    import tensorflow as tf

    try:
        with atomic_dir(version_dir) as tmp:
            write_saved_model(model, tmp, card.data_config, **_quality_probe_parts(generator_path, card))
            tflite_files = {}
            for variant in (("none",) if tflite or quantize else ()) + quantize:
                file_name = f"{name}.tflite" if variant == "none" else f"{name}_{variant}.tflite"
                (tmp / file_name).write_bytes(convert_to_tflite(tmp, None if variant == "none" else variant))
                tflite_files[variant] = file_name
            record = _model_record(name, version, card, model, generator_path, tflite_files, tmp, tf)
            from keras_cdseg.inference.quality.assess import export_quality_assets

            record["quality"] = export_quality_assets(generator_path.parent, tmp)  # docs/quality.md
            write_json_atomic(tmp / MODEL_JSON, record)
    except FileExistsError:
        raise InputError(version_dir, "version already exists; exports never overwrite") from None
    except OSError as e:
        if version_dir.exists():  # a concurrent export won the rename
            raise InputError(version_dir, "version already exists; exports never overwrite") from None
        raise InputError(version_dir, f"cannot write export ({e})") from None
    files = {variant: version_dir / file_name for variant, file_name in tflite_files.items()}
    return ExportResult(version_dir, version, version_dir / MODEL_JSON, files)


def load_generator(path):
    """Loads a `.keras` generator (inference only, not compiled, safe mode); InputError if it cannot be read."""
    from keras_cdseg.models.saving import load_model

    return load_model(path, compile=False)


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


def _quality_probe_parts(generator_path, card):
    """The critic beside a run's generator (or None) and the organ the quality estimate is about."""
    from keras_cdseg.inference.quality.estimate import DISCRIMINATOR_FILE, load_discriminator, organ_value_of

    return {"critic": load_discriminator(Path(generator_path).parent / DISCRIMINATOR_FILE),
            "organ_value": organ_value_of(card.labels)}  # fmt: skip


def write_saved_model(model, directory, data_config=None, volume_batch_size=None, critic=None, organ_value=None):
    """Writes `model` as a SavedModel whose `serving_default` maps `slices` to `probabilities` and uint8 `labels`.

    Also the `quality_statistics` signature and feature_statistics.json of the feature-shift signal
    (`keras_cdseg.deploy.quality_statistics`) when the generator has pre-norm BatchNorm blocks; with
    `organ_value` (and a `critic`), that signature is the whole quality probe.
    With `data_config`, also the raw-volume signatures `segment_volume` / `segment_volume_int16`
    (`keras_cdseg.deploy.volume_signature`: preprocessing, batched network and restoration in the graph).
    """
    import keras
    import tensorflow as tf

    height, width, num_channels = model.input_shape[1:]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(slices):
        probabilities = tf.cast(model(slices, training=False), tf.float32)
        return {"probabilities": probabilities, "labels": tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)}

    spec = tf.TensorSpec([None, height, width, num_channels], tf.float32, name=INPUT_NAME)
    archive.add_endpoint(SIGNATURE_NAME, serve, input_signature=[spec])
    from keras_cdseg.deploy.quality_statistics import add_quality_statistics_endpoint, write_feature_statistics

    block_names = add_quality_statistics_endpoint(archive, model, spec, critic, organ_value)
    if data_config is not None:
        from keras_cdseg.deploy.volume_signature import DEFAULT_VOLUME_BATCH_SIZE, add_volume_endpoints

        add_volume_endpoints(archive, model, data_config, volume_batch_size or DEFAULT_VOLUME_BATCH_SIZE)
    archive.write_out(str(directory), verbose=False)
    if block_names:
        write_feature_statistics(model, block_names, directory, organ_value, critic is not None and organ_value is not None)


def convert_to_tflite(saved_model_dir, quantize=None):
    """TFLite flatbuffer bytes of the SavedModel's `serving_default` (float32, or float16 / dynamic-range).

    Only the slice model: the `segment_volume` signatures (preprocessing in the graph) are not converted.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE_NAME])
    if quantize in QUANTIZATIONS:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _resolve_source(source):
    from keras_cdseg.run_dir import is_run_dir, load_run

    source = Path(source)
    if source.is_dir():
        if not is_run_dir(source):
            raise InputError(source, "not a run directory (no config.json) and not a .keras file")
        generator_path = load_run(source).generator_path("best")
        return generator_path, load_generator(generator_path), card_from_run(source)
    if not source.exists():
        raise InputError(source, "not found")
    if source.suffix != ".keras":
        raise InputError(source, "expected a run directory or a .keras generator file")
    model = load_generator(source)
    return source, model, card_for_keras_file(source, model.input_shape[1:], model.output_shape[-1])


def _model_record(name, version, card, model, generator_path, tflite_files, version_dir, tf):
    from keras_cdseg.deploy.volume_signature import DEFAULT_VOLUME_BATCH_SIZE, volume_signature_record

    height, width, num_channels = (int(n) for n in model.input_shape[1:])
    num_classes = int(model.output_shape[-1])
    return {
        "format": MODEL_FORMAT,
        "name": name,
        "version": version,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "signature": {
            "name": SIGNATURE_NAME,
            "inputs": {INPUT_NAME: {"dtype": "float32", "shape": [None, height, width, num_channels]}},
            "outputs": {
                "probabilities": {"dtype": "float32", "shape": [None, height, width, num_classes]},
                "labels": {"dtype": "uint8", "shape": [None, height, width]},
            },
        },
        "volume_signature": volume_signature_record(num_classes, DEFAULT_VOLUME_BATCH_SIZE),
        "preprocessing": {"data_config": to_dict(card.data_config), "num_channels": num_channels,
                          "steps": PREPROCESSING_STEPS},  # fmt: skip
        "postprocessing": {"largest_component_classes": list(card.largest_component_classes), "connectivity": 26},
        "labels": card.labels,
        "class_names": card.class_names,
        "model": card.record.get("model"),
        "source": {**card.record["source"], "generator": str(Path(generator_path).resolve()),
                   "generator_sha256": file_sha256(generator_path),
                   "data_config_source": card.record.get("data_config_source", "run")},  # fmt: skip
        "tflite": {
            file_name: {"quantize": variant, "bytes": (Path(version_dir) / file_name).stat().st_size}
            for variant, file_name in tflite_files.items()
        },
        "versions": _versions(tf),
    }


def _versions(tf):
    from importlib import metadata

    import keras
    import numpy

    import keras_cdseg

    versions = {"keras_cdseg": keras_cdseg.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                "numpy": numpy.__version__, "python": platform.python_version()}  # fmt: skip
    try:
        versions["ai_edge_litert"] = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        versions["ai_edge_litert"] = None
    return versions
