"""Which model `cdseg predict` uses: the first of these that is given or exists.

    1. --model PATH                       "option"
    2. the CDSEG_MODEL environment variable "environment"
    3. the highest version under ./saved_models/*/ (TF Serving's rule)   "saved_models"
    4. the model shipped in the package (keras_cdseg/pretrained/)      "bundled"

One rule for every command that needs a default model, printed in the output and recorded in
statistics.json (`ModelChoice.record()`). Needs no TensorFlow: `cdseg models` lists the candidates fast.
"""

import dataclasses
import os
from pathlib import Path

from keras_cdseg.errors import InputError
from keras_cdseg.model_card import list_versions

MODEL_ENV_VAR = "CDSEG_MODEL"
SAVED_MODELS_DIR = "saved_models"
SOURCES = ("option", "environment", "saved_models", "bundled")
_RULES = {
    "option": "--model",
    "environment": f"{MODEL_ENV_VAR} environment variable",
    "saved_models": f"highest version under {SAVED_MODELS_DIR}/",
    "bundled": "the model bundled with keras_cdseg",
}


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """A resolved model and why it was chosen.

    Args:
        path: Path. What `load_predictor` loads.
        source: str. One of `SOURCES`.
        bundle: `keras_cdseg.pretrained.BundledModel` or None. Set when the choice is the bundled model.
    """

    path: Path
    source: str
    bundle: object = None

    def describe(self):
        """`Model: <path> (<rule>)`, naming the bundled model's name, version and checksum."""
        if self.bundle is not None:
            return f"bundled model {self.bundle.describe()} at {self.path}"
        return f"{self.path} ({_RULES[self.source]})"

    def record(self):
        """What statistics.json keeps about the choice."""
        record = {"path": str(self.path), "source": self.source, "rule": _RULES[self.source]}
        if self.bundle is not None:
            record.update(name=self.bundle.name, version=self.bundle.version, sha256=self.bundle.sha256,
                          placeholder=self.bundle.placeholder)  # fmt: skip
        return record


def resolve_model(model=None, environ=None, saved_models=SAVED_MODELS_DIR, bundled=None):
    """The `ModelChoice` for an optional `--model` (see the module docstring for the order).

    Args:
        model: path or None. The `--model` option.
        environ: mapping or None. Environment variables (None: `os.environ`).
        saved_models: path. Export root searched third. Defaults to "./saved_models".
        bundled: `BundledModel` or None. None looks in the installed package (tests pass their own).

    Raises:
        InputError: CDSEG_MODEL names a path that does not exist, ./saved_models/ is ambiguous (the
            highest version exists for several names), or there is no model at all.
    """
    if model is not None:
        return ModelChoice(Path(model), "option")
    environ = os.environ if environ is None else environ
    from_env = (environ.get(MODEL_ENV_VAR) or "").strip()
    if from_env:
        if not Path(from_env).exists():
            raise InputError(from_env, f"named by {MODEL_ENV_VAR} but not found (unset it or fix the path)")
        return ModelChoice(Path(from_env), "environment")
    if _saved_model_versions(saved_models):
        return ModelChoice(default_model_path(saved_models), "saved_models")
    bundle = bundled if bundled is not None else _installed_bundle()
    if bundle is None:
        raise InputError(saved_models, f"no model: pass --model, set {MODEL_ENV_VAR}, export one with "
                                       "`cdseg export`, or install a keras_cdseg wheel that bundles one")  # fmt: skip
    return ModelChoice(bundle.predict_path, "bundled", bundle)


def available_models(model=None, environ=None, saved_models=SAVED_MODELS_DIR, bundled=None):
    """Every candidate of the order, as dicts `{"source", "path", "detail", "used"}` (`cdseg models`).

    `used` marks the one `resolve_model` picks with the same arguments; an unresolvable order (e.g. a
    CDSEG_MODEL that does not exist) leaves every `used` False and puts the reason in `error`.
    """
    environ = os.environ if environ is None else environ
    bundle = bundled if bundled is not None else _installed_bundle()
    entries = []
    if model is not None:
        entries.append({"source": "option", "path": str(model), "detail": _RULES["option"]})
    from_env = (environ.get(MODEL_ENV_VAR) or "").strip()
    if from_env:
        exists = Path(from_env).exists()
        entries.append({"source": "environment", "path": from_env,
                        "detail": _RULES["environment"] + ("" if exists else " (not found)")})  # fmt: skip
    for name, version, path in _saved_model_versions(saved_models):
        entries.append({"source": "saved_models", "path": str(path), "detail": f"{name} version {version}"})
    if bundle is not None:
        entries.append({"source": "bundled", "path": str(bundle.predict_path), "detail": bundle.describe()})
    try:
        chosen = resolve_model(model, environ, saved_models, bundle)
        error = None
    except InputError as e:
        chosen, error = None, str(e)
    for entry in entries:
        entry["used"] = chosen is not None and entry["source"] == chosen.source and entry["path"] == str(chosen.path)
    return {"models": entries, "error": error}


def default_model_path(root=SAVED_MODELS_DIR):
    """The highest integer version under `root/*/` that holds a SavedModel (TF Serving's choice).

    Raises:
        InputError: no exported version under `root`, or the highest version number exists for several
            model names (ambiguous; pass --model).
    """
    root = Path(root)
    candidates = {}
    for name, version, path in _saved_model_versions(root):
        candidates[name] = (version, path)  # versions come in ascending order: the last one stays
    if not candidates:
        raise InputError(root, "no exported model (<name>/<version>/ with a SavedModel); "
                               "run `cdseg export` or pass --model")  # fmt: skip
    best = max(version for version, _ in candidates.values())
    chosen = [path for version, path in candidates.values() if version == best]
    if len(chosen) > 1:
        names = ", ".join(str(p.parent.name) for p in chosen)
        raise InputError(root, f"version {best} exists for several models ({names}); choose one with --model")
    return chosen[0]


def _saved_model_versions(root):
    """`[(name, version, path)]` of every exported version (a folder with saved_model.pb) under `root/*/`."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version in list_versions(model_dir):
            if (model_dir / str(version) / "saved_model.pb").is_file():
                found.append((model_dir.name, version, model_dir / str(version)))
    return found


def _installed_bundle():
    from keras_cdseg.pretrained import bundled_model

    return bundled_model()
