"""The per-case quality record of `cdseg predict` / `cdseg evaluate --model`, and the assets it needs.

    quality = {"verdict": "ok" | "review" | "fail", "estimated_dice", "failure_probability",
               "warnings": [{"code", "level", "reason"}], "notes": [...], "signals": {...},
               "unavailable": {signal: why}, "typical_ranges": {signal: [low, high]}, "flags", "flagged",
               "organs": {name: {"volume_ml", "centroid_mm"}}   (when the label map's organs were given)}

The verdict and its warnings come from `triage.judge` (see there and docs/quality.md), with the organ-level
checks of `anatomy.py` when the caller passes the prediction's `organ_summary`. Notes never change
the verdict: `critic_unavailable`, `feature_shift_unavailable`, `agreement_unavailable` (the signal is
absent, value None). `typical_ranges` are the signals' ranges on the model's clean calibration cases.
Kept for one release: `flags` (warning codes, then notes) and `flagged` (verdict == "fail"; what
`--fail-on-flag` tested).

Assets beside a model (written by `cdseg train` into the run and copied by `cdseg export` into the version):
    quality.json         the calibration (see `calibration.py`): samples, volume reference, fitted model
    discriminator.keras  the conditional discriminator `(x, y) -> logit`, the critic
"""

import json
from pathlib import Path

from keras_cdseg.inference.quality.anatomy import anatomy_warnings
from keras_cdseg.inference.quality.calibration import (
    FAILURE_DICE,
    FEATURE_SOURCES,
    apply_quality_model,
    fit_quality_model,
)
from keras_cdseg.inference.quality.triage import FAIL_WARNINGS, judge, signed_volume_deviation, typical_ranges

QUALITY_JSON = "quality.json"
QUALITY_FORMAT = "keras_cdseg.quality/1"
DISCRIMINATOR_FILE = "discriminator.keras"
FAILURE_FLAGS = FAIL_WARNINGS


class QualityEstimator:
    """Maps a probe's signals to the quality record, refitting on the signals a predictor can compute.

    Args:
        calibration: dict (the content of quality.json) or None (signals and a `review` verdict only).
        organ_name: str. Names the organ in the warnings' reasons. Defaults to the calibration's organ.
    """

    def __init__(self, calibration=None, organ_name=None):
        self.calibration = calibration
        self.organ_name = organ_name or ((calibration or {}).get("organ") or {}).get("name") or "organ"
        self._typical_ranges = typical_ranges(calibration)
        self._models = {}

    @property
    def reference(self):
        return (self.calibration or {}).get("volume_reference")

    def model_for(self, unavailable):
        """The fitted model over every calibrated feature whose signal is available (cached per subset)."""
        stored = self.calibration["model"]
        names = tuple(n for n in stored["features"] if FEATURE_SOURCES.get(n, n) not in unavailable)
        if names == tuple(stored["features"]):
            return stored
        if names not in self._models:
            self._models[names] = fit_quality_model(self.calibration["samples"], self.reference, names,
                                                    stored.get("l2", 1.0))  # fmt: skip
        return self._models[names]

    @property
    def organ_references(self):
        """`{organ: volume reference}` of every organ the calibration's reference segmentations hold, or None."""
        return (self.calibration or {}).get("organ_volume_references")

    def estimate(self, signals, unavailable=None, organs=None):
        """The quality record (see the module docstring) of one case's `signals`.

        Args:
            signals: the probe's signals of the case.
            unavailable: `{signal: why}` for signals the predictor cannot compute.
            organs: `anatomy.organ_summary` of the predicted label map, or None to skip the organ-level checks.
        """
        unavailable = dict(unavailable or {})
        if signals.get("agreement") is None and "agreement" not in unavailable:
            unavailable["agreement"] = "not requested (--quality-perturbations)"
        notes = [f"{name}_unavailable" for name in ("critic_score", "feature_shift", "agreement") if name in unavailable]
        notes = [note.replace("critic_score", "critic") for note in notes]
        signals = dict(signals)
        signals["volume_deviation"] = signed_volume_deviation(signals.get("organ_volume_ml"), self.reference)
        record = {"verdict": None, "estimated_dice": None, "failure_probability": None}
        if self.calibration is not None:
            dice, failure = apply_quality_model(self.model_for(unavailable), signals, self.reference)
            record["estimated_dice"], record["failure_probability"] = round(dice, 4), round(failure, 4)
        # The estimate's own organ has its volume judged by `judge` against `self.reference`.
        organ_warnings = anatomy_warnings(organs, self.organ_references, skip_volume=(self.organ_name,)) if organs else []
        record["verdict"], warnings = judge(record["estimated_dice"], record["failure_probability"], signals,
                                            self.reference, self.calibration is not None, self.organ_name,
                                            organ_warnings)  # fmt: skip
        record.update({"warnings": warnings, "notes": notes, "signals": _rounded(signals), "unavailable": unavailable,
                       "typical_ranges": self._typical_ranges})  # fmt: skip
        if organs:
            record["organs"] = organs
        record["flags"] = [w["code"] for w in warnings] + notes
        record["flagged"] = record["verdict"] == "fail"
        return record


def read_calibration(path):
    """quality.json content, or None if the file does not exist (InputError if it is not one)."""
    from keras_cdseg.config import load_json
    from keras_cdseg.errors import InputError

    path = Path(path)
    if not path.is_file():
        return None
    record = load_json(path)
    if record.get("format") != QUALITY_FORMAT:
        raise InputError(path, f"not a keras_cdseg quality file (format {record.get('format')!r})")
    return record


def assets_dir_of(predictor):
    """The folder whose quality.json / discriminator.keras belong to `predictor` (run or version directory)."""
    path = Path(predictor.path)
    return path if path.is_dir() else path.parent


def load_discriminator(path):
    """The critic `.keras` model at `path`, or None if there is none."""
    from keras_cdseg.models.saving import load_model

    return load_model(path, compile=False) if Path(path).is_file() else None


def save_discriminator(discriminator, path, input_shape, num_classes):
    """Saves a discriminator layer as a functional `.keras` model `[x (H, W, 2T+1), y (H, W, C)] -> logit`."""
    import keras

    from keras_cdseg.io_utils import atomic_path

    x = keras.Input(tuple(input_shape), name="slices")
    y = keras.Input(tuple(input_shape[:2]) + (int(num_classes),), name="probabilities")
    model = keras.Model([x, y], discriminator((x, y), training=False), name="critic")
    with atomic_path(path) as tmp:
        model.save(tmp)


def quality_probe_for(predictor, organ_value=None):
    """`(QualityProbe, QualityEstimator)` for a loaded `Predictor`, from the assets beside it.

    Built once per predictor (loading the critic and compiling the probe cost about as much as loading the
    model) and kept on it, so later calls with the same predictor reuse them.
    """
    from keras_cdseg.inference.quality.signals import QualityProbe

    if organ_value is None:
        organ_value = organ_value_of(predictor.card.labels)
    cached = getattr(predictor, "_quality_tools", None)
    if cached is not None and cached[0] == organ_value:
        return cached[1]

    directory = assets_dir_of(predictor)
    calibration = read_calibration(directory / QUALITY_JSON)
    exported = getattr(predictor, "feature_statistics", None)
    # An exported probe that carries the critic needs no discriminator.keras (nor Keras, to load it).
    carries_critic = exported is not None and exported.carries_critic_for(organ_value)
    discriminator = None if carries_critic else load_discriminator(directory / DISCRIMINATOR_FILE)
    generator = getattr(predictor, "model", None)
    probe = QualityProbe(predictor, organ_value, generator=generator, discriminator=discriminator,
                         feature_statistics=exported)  # fmt: skip
    tools = (probe, QualityEstimator(calibration))
    try:
        predictor._quality_tools = (organ_value, tools)
    except AttributeError:  # e.g. a plain function without attributes: nothing to cache on
        pass
    return tools


def organ_value_of(labels):
    """The class the quality estimate is about: the liver if labelled, else the first foreground class."""
    if "liver" in labels:
        return int(labels["liver"])
    return min(int(v) for v in labels.values() if int(v) != 0)


def is_failure(dice):
    return dice < FAILURE_DICE


def _rounded(signals):
    return json.loads(json.dumps(signals, default=float), parse_float=lambda s: round(float(s), 6))
