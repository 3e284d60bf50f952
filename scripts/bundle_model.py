"""Copies a trained model into the package as the bundled model (keras_cdseg/pretrained/).

    python scripts/bundle_model.py SRC [--format keras|saved_model] [--no-float16] [--no-tflite] [--placeholder]

SRC is a run directory (`cdseg train --out`), an exported version directory (`saved_models/<name>/<v>/`)
or `saved_models/<name>` (its highest version). What lands in keras_cdseg/pretrained/model/:

- `--format keras` (default): config.json, best_generator.keras, quality.json and discriminator.keras of
  the run (for an export, of the run its model.json names); `.keras` weights stored as float16 unless
  `--no-float16` (Keras casts them back to float32 when loading: the network still computes in float32).
- `--format saved_model`: the exported version directory without its .tflite files (a run is exported
  first, as `cdseg export` would).
- Unless `--no-tflite`, also the same network as `<name>.tflite` (float32, converted from the bundled
  weights, with the quality probe's `quality_statistics` signature) and its model.json and
  feature_statistics.json: what `cdseg predict` runs, on LiteRT, without importing TensorFlow. The bundle is
  refused unless its TFLite and Keras (or SavedModel) forms give the same probabilities.

bundle.json records the sha256 of every file and one digest of them all (`cdseg info` prints it), where
the model came from and whether its quality estimate is calibrated. The bundle must stay <= 20 MB (the
wheel carries it). The old bundle is replaced only once the new one is complete and loads.
"""

import argparse
import datetime
import io
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = ROOT / "keras_cdseg" / "pretrained"
MAX_BUNDLE_MB = 20.0
RUN_FILES = ("config.json", "quality.json", "discriminator.keras")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="run directory, exported version directory or saved_models/<name>")
    parser.add_argument("--format", choices=("keras", "saved_model"), default="keras")
    parser.add_argument("--no-float16", dest="float16", action="store_false",
                        help="keep float32 weights in .keras files (default: stored as float16)")
    parser.add_argument("--no-tflite", dest="tflite", action="store_false",
                        help="bundle no TFLite copy (cdseg predict then imports TensorFlow and runs Keras)")
    parser.add_argument("--name", default="cdseg-abdomen-ct-mr")
    parser.add_argument("--version", type=int, default=None, help="default: the bundled version + 1")
    parser.add_argument("--placeholder", action="store_true",
                        help="mark the bundle as a stand-in (a test model), never for a released model")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: keras_cdseg/pretrained/")
    parser.add_argument("--max-mb", type=float, default=MAX_BUNDLE_MB)
    args = parser.parse_args(argv)
    from cdseg.native_logs import quiet_native_logs
    from keras_cdseg.errors import InputError

    try:
        with quiet_native_logs():  # LiteRT's "INFO: Created ... delegate" when the TFLite copy is checked
            record = bundle_model(args.source, args.dest, args.format, args.float16, args.name, args.version,
                                  args.placeholder, args.max_mb, args.tflite)  # fmt: skip
    except InputError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: record[k] for k in ("name", "version", "model_format", "weights_dtype", "bytes", "sha256")}))
    return 0


def bundle_model(source, dest=DEFAULT_DEST, model_format="keras", float16=True, name="cdseg-abdomen-ct-mr",
                 version=None, placeholder=False, max_mb=MAX_BUNDLE_MB, tflite=True):
    """Writes dest/model/ and dest/bundle.json from `source`; returns the bundle.json record."""
    from keras_cdseg.errors import InputError
    from keras_cdseg.io_utils import replace_dir, write_json_atomic
    from keras_cdseg.pretrained import BUNDLE_FORMAT, BUNDLE_JSON, bundled_model, files_sha256, model_files

    source, dest = Path(source).resolve(), Path(dest)
    previous = bundled_model(dest)
    version = version or (previous.version + 1 if previous else 1)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=dest))
    try:
        model_dir = staging / "model"
        if model_format == "keras":
            origin = _copy_run_files(source, model_dir, float16)
        else:
            origin = _copy_export(source, model_dir, name)
        tflite_file = _add_tflite(model_dir, name, origin) if tflite else None
        files = model_files(model_dir)
        size = sum((model_dir / f).stat().st_size for f in files)
        if size > max_mb * 1e6:
            raise InputError(source, f"bundle would be {size / 1e6:.1f} MB, over the {max_mb:g} MB limit; "
                                     "use --format keras (float16 weights) or a smaller network")  # fmt: skip
        predictor = _check_loads(model_dir, tflite_file)
        record = {
            "format": BUNDLE_FORMAT,
            "name": name,
            "version": int(version),
            "model_format": model_format,
            "weights_dtype": "float16" if model_format == "keras" and float16 else "float32",
            "placeholder": bool(placeholder),
            "model_dir": "model",
            "tflite": tflite_file,
            "bytes": size,
            "files": files,
            "sha256": files_sha256(files),
            "labels": predictor.card.labels,
            "input_shape": list(predictor.input_shape),
            "quality_calibrated": (model_dir / "quality.json").is_file(),
            "source": origin,
            "bundled_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        target = dest / "model"
        if target.exists():
            replace_dir(model_dir, target)
        else:
            model_dir.rename(target)
        write_json_atomic(dest / BUNDLE_JSON, record)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_run_files(source, model_dir, float16):
    """A run-like folder: config.json, best_generator.keras and the quality assets of `source`'s run."""
    from keras_cdseg.model_card import MODEL_JSON, config_hash, file_sha256
    from keras_cdseg.run_dir import BEST_GENERATOR, is_run_dir, load_run

    if (source / MODEL_JSON).is_file() or not is_run_dir(source):
        source = _run_of_export(source)
    run = load_run(source)
    generator = run.generator_path("best")
    model_dir.mkdir(parents=True)
    _copy_keras(generator, model_dir / BEST_GENERATOR, float16)
    for file_name in RUN_FILES:
        if (source / file_name).is_file():
            if file_name.endswith(".keras"):
                _copy_keras(source / file_name, model_dir / file_name, float16)
            else:
                shutil.copy2(source / file_name, model_dir / file_name)
    if not (source / "quality.json").is_file():
        print(f"Warning: {source} has no quality.json: the bundled model reports signals without an estimate",
              file=sys.stderr)  # fmt: skip
    return {"kind": "run", "path": str(source), "generator": generator.name,
            "generator_sha256": file_sha256(generator), "config_hash": config_hash(run.record["run"])}  # fmt: skip


def _run_of_export(source):
    """The run directory an export (or saved_models/<name>) came from, as its model.json records it."""
    from keras_cdseg.config import load_json
    from keras_cdseg.errors import InputError
    from keras_cdseg.model_card import MODEL_JSON
    from keras_cdseg.run_dir import is_run_dir

    version_dir = _version_dir(source)
    generator = (load_json(version_dir / MODEL_JSON).get("source") or {}).get("generator")
    run = Path(generator).parent if generator else None
    if run is None or not is_run_dir(run):
        raise InputError(source, "--format keras needs the run directory; this export's run is not available "
                                 "(bundle it with --format saved_model, or pass the run directory)")  # fmt: skip
    return run


def _version_dir(source):
    from keras_cdseg.errors import InputError
    from keras_cdseg.model_card import MODEL_JSON, list_versions

    if (source / MODEL_JSON).is_file():
        return source
    versions = list_versions(source)
    if versions and (source / str(versions[-1]) / MODEL_JSON).is_file():
        return source / str(versions[-1])
    raise InputError(source, "expected a run directory, an exported version directory or saved_models/<name>")


def _copy_export(source, model_dir, name):
    """The exported version directory without .tflite files (a run directory is exported first)."""
    from keras_cdseg.run_dir import is_run_dir

    with tempfile.TemporaryDirectory() as tmp:
        if is_run_dir(source):
            from keras_cdseg.deploy.export import export_model

            version_dir = export_model(source, root=Path(tmp), name=name).version_dir
        else:
            version_dir = _version_dir(source)
        shutil.copytree(version_dir, model_dir, ignore=shutil.ignore_patterns("*.tflite"))
    return {"kind": "export", "path": str(source), "model_json_sha256": _sha(model_dir / "model.json")}


def _sha(path):
    from keras_cdseg.model_card import file_sha256

    return file_sha256(path)


def _copy_keras(source, target, float16):
    """Copies a `.keras` archive; with `float16`, its float32 weights are stored as float16 (half the bytes).

    Keras assigns stored values to variables of the model's own dtype, so a float16-stored float32 model
    loads and computes in float32; only the rounding of the weights changes (measure it: MODEL_CARD.md).
    """
    if not float16:
        shutil.copy2(source, target)
        return
    import h5py
    import numpy as np

    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    weights = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as old, h5py.File(weights, "w") as new:
        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                value = item[()]
                new.create_dataset(name, data=value.astype(np.float16) if value.dtype == np.float32 else value)
            else:
                new.require_group(name)
            for key, attr in item.attrs.items():
                new[name].attrs[key] = attr

        old.visititems(copy)
        for key, attr in old.attrs.items():
            new.attrs[key] = attr
    members["model.weights.h5"] = weights.getvalue()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def _add_tflite(model_dir, name, origin):
    """Adds `<name>.tflite` (with model.json, feature_statistics.json) of the staged model; returns its name.

    Converted from the staged files themselves (float16-stored weights included), float32 because a float16
    conversion rounds the weights again after folding BatchNorm into them: its feature shift on the real CT
    differed from the Keras model's in the 4th digit, the float32 file's not at all.
    """
    from keras_cdseg.config import load_json
    from keras_cdseg.deploy.export import convert_to_tflite, export_model
    from keras_cdseg.inference.quality.exported_statistics import FEATURE_STATISTICS_JSON
    from keras_cdseg.model_card import MODEL_JSON, write_model_card

    file_name = f"{name}.tflite"
    if (model_dir / MODEL_JSON).is_file():  # --format saved_model: the version directory converts as it is
        (model_dir / file_name).write_bytes(convert_to_tflite(model_dir))
        record = load_json(model_dir / MODEL_JSON)
        record["tflite"] = {file_name: {"quantize": "none", "bytes": (model_dir / file_name).stat().st_size}}
        write_model_card(model_dir, record)
        return file_name
    with tempfile.TemporaryDirectory() as tmp:
        # Never calibrates: the bundle carries the run's quality.json or none (a warning says so).
        exported = export_model(model_dir, root=Path(tmp), name=name, tflite=True, calibrate=False)
        shutil.copy2(exported.tflite_files["none"], model_dir / file_name)
        if (exported.version_dir / FEATURE_STATISTICS_JSON).is_file():
            shutil.copy2(exported.version_dir / FEATURE_STATISTICS_JSON, model_dir / FEATURE_STATISTICS_JSON)
        record = load_json(exported.model_json)
    # The staging folder it was exported from is gone: name where the model came from instead.
    record["source"] = {**origin, "bundled_as": file_name}
    record["tflite"] = {file_name: record["tflite"][file_name]}
    write_model_card(model_dir, record)
    return file_name


def _check_loads(model_dir, tflite_file=None):
    """Loads the staged model as `cdseg predict` would (InputError if it cannot); the TFLite copy must agree."""
    import numpy as np

    from keras_cdseg.errors import InputError
    from keras_cdseg.inference.predictors import load_predictor

    predictor = load_predictor(model_dir)
    if tflite_file is not None:
        lite = load_predictor(model_dir / tflite_file)
        slices = np.random.default_rng(0).uniform(0, 1, (4, *predictor.input_shape)).astype(np.float32)
        difference = float(np.abs(lite(slices) - predictor(slices)).max())
        if difference > 1e-4:
            raise InputError(model_dir / tflite_file, f"TFLite probabilities differ from the model's by {difference:.2g}")
    return predictor


if __name__ == "__main__":
    from cdseg.native_logs import install as quiet_tensorflow_logs

    # The same console as `cdseg`: TensorFlow's C++ start-up lines only when TF_CPP_MIN_LOG_LEVEL asks.
    quiet_tensorflow_logs()
    sys.exit(main())
