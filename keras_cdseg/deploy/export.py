"""Exporting a trained generator for serving: SavedModel in the TF Serving layout, TFLite, and `model.json`.

    saved_models/<name>/<version>/            one integer version per export, never overwritten
      saved_model.pb  variables/  ...         signature serving_default: slices -> probabilities, labels
                                              segment_volume(_int16): volume, spacing_mm -> labels, volumes_ml
      model.json                              preprocessing, labels, post-processing, hashes, versions
      feature_statistics.json                 quality probe (signature quality_statistics; deploy.quality_statistics)
      <name>.tflite  [<name>_float16.tflite  <name>_dynamic.tflite]   serving_default and quality_statistics

A version is built under a hidden temporary name beside its final place and renamed when complete, so TF
Serving (which only loads integer-named folders) never sees a half-written model. `model.json` is what lets
any client (TF Serving REST, TFLite, `cdseg predict`) prepare inputs exactly as in training.
"""

import dataclasses
import datetime
import platform
import re
from pathlib import Path

from keras_cdseg.config import to_dict
from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_dir
from keras_cdseg.model_card import (
    INPUT_NAME,
    MODEL_FORMAT,
    MODEL_JSON,
    SIGNATURE_NAME,
    card_for_keras_file,
    card_from_run,
    check_model_matches_card,
    file_sha256,
    list_versions,
    write_model_card,
)
from keras_cdseg.models.saving import load_generator

QUANTIZATIONS = ("float16", "dynamic")
# The steps model.json describes; {intensity} is the step of the model's `DataConfig.intensity` rule.
PREPROCESSING_STEPS = (
    "reorient to RAS; {intensity}; resample in-plane "
    "(linear, centre-aligned) to target_spacing_mm; centre pad/crop to image_size; axial slices as [S, H, W] "
    "with H along RAS x and W along RAS y; 2T+1 neighbouring slices as channels (edge slices repeated)"
)
INTENSITY_STEPS = {
    "percentiles": "clip to the volume's clip_percentiles and map linearly to [0, 1]",
    "ranks": ("replace each voxel by its rank in the volume (keras_cdseg.data.preprocessing.rank_knots, "
              "ranks_of: 1025 quantiles of a strided sample, a 65536-entry table)"),
    "landmarks": ("replace each voxel by its rank in the volume, mapped through the fixed reference curve "
                  "keras_cdseg.data.preprocessing.REFERENCE_LANDMARKS (rank_knots, ranks_of with landmarks: "
                  "1025 quantiles of a strided sample, a 65536-entry table)"),
}
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def export_model(source, root="saved_models", name="cdseg", version=None, tflite=False, quantize=(), calibrate=True):
    """Exports a run directory's best generator (or a `.keras` generator) as a new serving version.

    Args:
        source: path. A run directory (uses `best_generator.keras`, falling back to the last) or a `.keras`
            generator file.
        root: path. Export root; the model goes to `root/name/version`. Defaults to "saved_models".
        name: str. Model name (letters, digits, `_`, `-`, `.`). Defaults to "cdseg".
        version: int or None. None takes one more than the highest existing version (1 for the first).
        tflite: bool. Also write `<name>.tflite` (float32). Defaults to False.
        quantize: iterable of "float16" / "dynamic". Also write `<name>_<q>.tflite` (implies the float32 file).
        calibrate: bool. Calibrate the quality estimate of a run that has no quality.json (written into the
            run too; `export_quality_assets`). Defaults to True.

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

            record["quality"] = export_quality_assets(generator_path.parent, tmp, calibrate=calibrate)  # docs/quality.md
            write_model_card(tmp, record)
    except FileExistsError:
        raise InputError(version_dir, "version already exists; exports never overwrite") from None
    except OSError as e:
        if version_dir.exists():  # a concurrent export won the rename
            raise InputError(version_dir, "version already exists; exports never overwrite") from None
        raise InputError(version_dir, f"cannot write export ({e})") from None
    files = {variant: version_dir / file_name for variant, file_name in tflite_files.items()}
    return ExportResult(version_dir, version, version_dir / MODEL_JSON, files)


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

    Only the slice models: `serving_default` and, when the SavedModel has it, `quality_statistics` (the
    quality probe, so LiteRT users get every quality signal; the two share their weights in the file). The
    `segment_volume` signatures (preprocessing in the graph) are not converted.
    """
    import tensorflow as tf

    from keras_cdseg.inference.quality.exported_statistics import FEATURE_STATISTICS_JSON, QUALITY_STATISTICS_SIGNATURE

    signatures = [SIGNATURE_NAME]
    if (Path(saved_model_dir) / FEATURE_STATISTICS_JSON).is_file():  # written exactly with that signature
        signatures.append(QUALITY_STATISTICS_SIGNATURE)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=signatures)
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
                          "steps": PREPROCESSING_STEPS.format(intensity=INTENSITY_STEPS[card.data_config.intensity])},  # fmt: skip
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
