"""Reading back the feature-shift signal of an exported model: its `quality_statistics` signature and
feature_statistics.json (written by `keras_cdseg.deploy.quality_statistics`, which imports these names).

Here, below deploy, so that `SavedModelPredictor` can load them without inference importing deploy.
"""

from pathlib import Path

import numpy as np

QUALITY_STATISTICS_SIGNATURE = "quality_statistics"
FEATURE_STATISTICS_JSON = "feature_statistics.json"
FEATURE_STATISTICS_FORMAT = "keras_cdseg.feature_statistics/1"


def load_feature_statistics(loaded, directory):
    """`(forward, moving, organ_value)` for `QualityProbe(feature_statistics=...)`, or None without them.

    `organ_value` is the class whose confidence sums and mask the signature also returns (None: block
    statistics and probabilities only).

    Args:
        loaded: the object `tf.saved_model.load` returned.
        directory: the version directory (feature_statistics.json).

    Raises:
        InputError: feature_statistics.json exists but is not one, or names blocks the signature lacks.
    """
    from keras_cdseg.config import load_json
    from keras_cdseg.errors import InputError

    path = Path(directory) / FEATURE_STATISTICS_JSON
    if QUALITY_STATISTICS_SIGNATURE not in loaded.signatures or not path.is_file():
        return None
    record = load_json(path)
    if record.get("format") != FEATURE_STATISTICS_FORMAT:
        raise InputError(path, f"not a keras_cdseg feature statistics file (format {record.get('format')!r})")
    signature = loaded.signatures[QUALITY_STATISTICS_SIGNATURE]
    missing = [name for name in record["blocks"] if f"{name}_mean" not in signature.structured_outputs]
    if missing:
        raise InputError(path, f"block {missing[0]!r} is not an output of the {QUALITY_STATISTICS_SIGNATURE} signature")
    moving = {name: (np.asarray(block["moving_mean"], np.float64), np.asarray(block["moving_variance"], np.float64))
              for name, block in record["blocks"].items()}  # fmt: skip

    import tensorflow as tf

    def forward(slices):
        return {name: value.numpy() for name, value in signature(slices=tf.constant(slices, tf.float32)).items()}

    return forward, moving, record.get("organ_value")
