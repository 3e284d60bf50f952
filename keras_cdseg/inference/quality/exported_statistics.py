"""Reading back the quality probe of an exported model: its `quality_statistics` signature (SavedModel or
TFLite) and feature_statistics.json (written by `keras_cdseg.deploy.quality_statistics`, which imports these
names).

Here, below deploy, so that the SavedModel and TFLite predictors can load them without inference importing
deploy. Nothing here imports Keras: a TFLite model's probe runs on LiteRT alone.
"""

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

QUALITY_STATISTICS_SIGNATURE = "quality_statistics"
FEATURE_STATISTICS_JSON = "feature_statistics.json"
FEATURE_STATISTICS_FORMAT = "keras_cdseg.feature_statistics/1"


class ExportedStatistics(NamedTuple):
    """What `QualityProbe(feature_statistics=...)` takes from an exported model.

    Args:
        forward: callable `slices float32 -> {"probabilities", "<block>_mean", "<block>_mean_square", ...}`.
        moving: dict. Block name -> `(moving_mean, moving_variance)` float64.
        organ_value: int or None. The class whose confidence sums and mask `forward` also returns (None:
            block statistics and probabilities only).
        critic: bool. `forward` also returns the critic's "critic_logit" (the export's own critic).
    """

    forward: Callable
    moving: dict
    organ_value: int | None
    critic: bool = False

    def is_complete_for(self, organ_value):
        """True when `forward` returns every signal of a probe about `organ_value` (confidence, organ mask)."""
        return self.organ_value is not None and int(self.organ_value) == int(organ_value)

    def carries_critic_for(self, organ_value):
        """True when `forward` also returns the critic's logit for that probe: no discriminator is needed."""
        return self.critic and self.is_complete_for(organ_value)


def load_feature_statistics(loaded, directory):
    """`ExportedStatistics` of a SavedModel, or None without the signature or feature_statistics.json.

    Args:
        loaded: the object `tf.saved_model.load` returned.
        directory: the version directory (feature_statistics.json).

    Raises:
        InputError: feature_statistics.json exists but is not one, or names blocks the signature lacks.
    """
    if QUALITY_STATISTICS_SIGNATURE not in loaded.signatures:
        return None
    signature = loaded.signatures[QUALITY_STATISTICS_SIGNATURE]
    record = _read_record(directory, signature.structured_outputs)
    if record is None:
        return None
    import tensorflow as tf

    def forward(slices):
        return {name: value.numpy() for name, value in signature(slices=tf.constant(slices, tf.float32)).items()}

    return _exported(forward, record)


def load_tflite_feature_statistics(interpreter, directory):
    """`ExportedStatistics` of a TFLite model (LiteRT or tf.lite interpreter), or None without them.

    Raises:
        InputError: as `load_feature_statistics`.
    """
    if QUALITY_STATISTICS_SIGNATURE not in interpreter.get_signature_list():
        return None
    runner = interpreter.get_signature_runner(QUALITY_STATISTICS_SIGNATURE)
    record = _read_record(directory, runner.get_output_details())
    if record is None:
        return None

    def forward(slices):
        return runner(slices=np.asarray(slices, np.float32))

    return _exported(forward, record)


def _read_record(directory, output_names):
    """feature_statistics.json of `directory` checked against the signature's outputs; None if absent."""
    from keras_cdseg.config import load_json
    from keras_cdseg.errors import InputError

    path = Path(directory) / FEATURE_STATISTICS_JSON
    if not path.is_file():
        return None
    record = load_json(path)
    if record.get("format") != FEATURE_STATISTICS_FORMAT:
        raise InputError(path, f"not a keras_cdseg feature statistics file (format {record.get('format')!r})")
    missing = [name for name in record["blocks"] if f"{name}_mean" not in output_names]
    if missing:
        raise InputError(path, f"block {missing[0]!r} is not an output of the {QUALITY_STATISTICS_SIGNATURE} signature")
    if record.get("critic") and "critic_logit" not in output_names:
        raise InputError(path, f"records a critic, but the {QUALITY_STATISTICS_SIGNATURE} signature has no critic_logit")
    return record


def _exported(forward, record):
    moving = {name: (np.asarray(block["moving_mean"], np.float64), np.asarray(block["moving_variance"], np.float64))
              for name, block in record["blocks"].items()}  # fmt: skip
    organ_value = record.get("organ_value")
    return ExportedStatistics(forward, moving, None if organ_value is None else int(organ_value),
                              bool(record.get("critic")) and organ_value is not None)  # fmt: skip
