"""The exported form of the feature-shift signal: a SavedModel signature and the moving statistics beside it.

    VERSION/
      saved_model.pb           signature quality_statistics: slices -> probabilities, <block>_mean,
                               <block>_mean_square (the generator's graph with its pre-norm block inputs'
                               channel statistics), and from `cdseg export` also the confidence sums, the
                               organ mask and the critic's logit: the whole quality probe in one call
                               (serving_default is unchanged)
      feature_statistics.json  {"format", "signature", "blocks": {block: {"moving_mean", "moving_variance"}},
                                "organ_value", "critic"}

`cdseg predict` on a version directory calls `quality_statistics` instead of `serving_default` when it
estimates quality (one pass either way), so exported models report the same `feature_shift` as the run
directory they came from. TFLite files carry only `serving_default`: their feature shift stays unavailable.
"""

from pathlib import Path

import numpy as np

QUALITY_STATISTICS_SIGNATURE = "quality_statistics"
FEATURE_STATISTICS_JSON = "feature_statistics.json"
FEATURE_STATISTICS_FORMAT = "keras_cdseg.feature_statistics/1"


def add_quality_statistics_endpoint(archive, model, spec, critic=None, organ_value=None):
    """Adds the `quality_statistics` endpoint to a `keras.export.ExportArchive`; returns the block names.

    With `organ_value`, the endpoint is the whole quality probe (`build_probe_model`: also the confidence
    sums, the organ mask and, with a `critic`, its logit per slice), so an exported model gathers every
    signal in one call as the run directory does. Nothing is added for a generator without pre-norm
    BatchNorm blocks (post-norm, instance norm).
    """
    import keras
    import tensorflow as tf

    from keras_cdseg.inference.quality.signals import build_probe_model, feature_statistics_outputs

    if organ_value is None:
        outputs, block_names = feature_statistics_outputs(model)
        statistics_model = keras.Model(model.inputs[0], outputs, name="quality_statistics") if block_names else None
    else:
        statistics_model, block_names = build_probe_model(model, critic, int(organ_value))
    if not block_names:
        return []
    if critic is not None and organ_value is not None:
        archive.track(critic)

    def quality_statistics(slices):
        outputs = statistics_model(slices, training=False)
        return {name: value if value.dtype == tf.uint8 else tf.cast(value, tf.float32) for name, value in outputs.items()}

    archive.add_endpoint(QUALITY_STATISTICS_SIGNATURE, quality_statistics, input_signature=[spec])
    return block_names


def write_feature_statistics(model, block_names, directory, organ_value=None, critic=False):
    """Writes feature_statistics.json (the blocks' moving mean / variance) into an export directory.

    `organ_value` and `critic` record what else the signature returns (see `add_quality_statistics_endpoint`).
    """
    from keras_cdseg.inference.quality.signals import moving_statistics
    from keras_cdseg.io_utils import write_json_atomic

    blocks = {name: {"moving_mean": mean.tolist(), "moving_variance": variance.tolist()}
              for name, (mean, variance) in moving_statistics(model, block_names).items()}  # fmt: skip
    write_json_atomic(Path(directory) / FEATURE_STATISTICS_JSON, {
        "format": FEATURE_STATISTICS_FORMAT, "signature": QUALITY_STATISTICS_SIGNATURE, "blocks": blocks,
        "organ_value": None if organ_value is None else int(organ_value), "critic": bool(critic)})  # fmt: skip


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
