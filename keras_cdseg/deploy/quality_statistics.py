"""The exported form of the quality probe: a SavedModel (and TFLite) signature and the moving statistics beside it.

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
directory they came from. The export's .tflite files carry the same signature (`convert_to_tflite`), so a
TFLite model on LiteRT reports every signal too, without TensorFlow or Keras. Reading them back
(`load_feature_statistics`, `load_tflite_feature_statistics`) is inference's part:
`keras_cdseg.inference.quality.exported_statistics`.
"""

from pathlib import Path

from keras_cdseg.inference.quality.exported_statistics import (
    FEATURE_STATISTICS_FORMAT,
    FEATURE_STATISTICS_JSON,
    QUALITY_STATISTICS_SIGNATURE,
)


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
