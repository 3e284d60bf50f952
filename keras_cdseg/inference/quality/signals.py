"""Per-scan quality signals, gathered on the generator's own forward pass.

    slices --QualityProbe--> probabilities (handed on to predict_volume unchanged)
              |  one compiled call of a functional model built once per predictor:
              |    generator softmax (Keras generators: the same pass; SavedModel and TFLite exports: their
              |      quality_statistics signature, the same graph; other kinds: their own output)
              |    per pre-norm BatchNorm block: channel mean / mean square of the block's input
              |    critic: discriminator(x, softmax) logit per slice
              |    confidence: entropy / max-probability sums over the predicted organ and its band
              '    the predicted organ mask (components before post-processing, on the prepared grid)
    probe.signals(labels, voxel_volume_ml) -> {critic_score, feature_shift, mean_entropy, ...}

A signal that cannot be measured is None (never a made-up value) and `probe.unavailable` says why: no
discriminator beside the model, a model kind that does not expose its block statistics (a SavedModel or TFLite
file exported before it carried the `quality_statistics` signature, any other callable), or an empty
prediction (nothing to aggregate over).
"""

import numpy as np
from scipy import ndimage

EPSILON = 1e-6
BAND_PIXELS = 2
STATISTICS_GRID = 64


def contracting_prenorm_blocks(generator):
    """The generator's `PreNormConvBlock`s that apply BatchNorm to their input, on its contracting path.

    In graph order, up to the first upsampling layer: the encoder and the bottleneck.
    """
    import keras

    from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

    blocks = []
    for layer in generator.layers:
        if isinstance(layer, (keras.layers.UpSampling2D, keras.layers.Conv2DTranspose)):
            break
        if isinstance(layer, PreNormConvBlock) and layer.norm == "batch" and layer.norm_first:
            blocks.append(layer)
    return blocks


def confidence_tensors(probabilities, organ_value, band_pixels=BAND_PIXELS):
    """Per-slice `{"entropy_sum", "max_probability_sum", "region_pixels", "organ"}` (keras.ops, any backend).

    The region is the arg-max organ dilated in-plane by `band_pixels` (a (2b+1)² square neighbourhood: the
    organ and its boundary band); entropy is normalized by log(C) to [0, 1]. `organ` is the uint8 mask.

    Args:
        probabilities: `[N, H, W, C]` softmax (tensor or numpy).
        organ_value: int. Class whose region is measured.
        band_pixels: int. Width of the band. Defaults to 2.
    """
    import keras
    from keras import ops

    probabilities = ops.cast(probabilities, "float32")
    num_classes = probabilities.shape[-1]
    organ = ops.cast(is_argmax(probabilities, organ_value), "float32")[..., None]
    region = organ
    if band_pixels:
        region = keras.ops.max_pool(organ, pool_size=2 * band_pixels + 1, strides=1, padding="same")
    entropy = -ops.sum(probabilities * ops.log(ops.maximum(probabilities, 1e-12)), axis=-1, keepdims=True)
    entropy = entropy / float(np.log(num_classes))
    max_probability = ops.max(probabilities, axis=-1, keepdims=True)
    return {
        "entropy_sum": ops.sum(entropy * region, axis=(1, 2, 3)),
        "max_probability_sum": ops.sum(max_probability * region, axis=(1, 2, 3)),
        "region_pixels": ops.sum(region, axis=(1, 2, 3)),
        "organ": ops.cast(organ[..., 0], "uint8"),
    }


def is_argmax(probabilities, class_value):
    """`argmax(probabilities, -1) == class_value` (first maximum wins ties), from comparisons only.

    Keras's TensorFlow `argmax` of floats masks negative zeros with a bitwise AND, an op TFLite lacks; this
    form converts, so the exported probe runs on LiteRT (and a softmax has no negative zeros to mask).
    """
    from keras import ops

    value = probabilities[..., class_value]
    at_least_rest = ops.greater_equal(value, ops.max(probabilities[..., class_value:], axis=-1))
    if class_value == 0:
        return at_least_rest
    return ops.logical_and(at_least_rest, ops.greater(value, ops.max(probabilities[..., :class_value], axis=-1)))


def feature_statistics_outputs(generator):
    """`(outputs, block names)`: the generator's probabilities and its pre-norm block input statistics.

    `outputs` maps "probabilities" and, per pre-norm BatchNorm block of the contracting path (encoder and
    bottleneck), "<block>_mean" / "<block>_mean_square"
    (`[N, C]` channel means of the block's input and of its square over a subgrid, see `subsampled`) to
    symbolic tensors of the generator's own graph. `build_probe_model` uses them, and the export writes them
    as the SavedModel signature `quality_statistics`, so exported models measure the same feature shift.
    """
    import keras

    outputs = {"probabilities": keras.ops.cast(generator.outputs[0], "float32")}
    # The contracting path only: its blocks see the scan's statistics before skip connections mix them, and
    # exposing the expanding path's full-resolution inputs as well cost ~10 % of the pass (the graph loses
    # fusions), for blocks that shift less (the demo model on the real CT: 0.09-0.51 there, 0.24-0.84 here).
    blocks = [block for block in contracting_prenorm_blocks(generator) if _single_input(block)]
    for block in blocks:
        features = keras.ops.cast(subsampled(block.input), "float32")
        outputs[f"{block.name}_mean"] = keras.ops.mean(features, axis=(1, 2))
        outputs[f"{block.name}_mean_square"] = keras.ops.mean(keras.ops.square(features), axis=(1, 2))
    return outputs, [block.name for block in blocks]


def build_probe_model(generator=None, discriminator=None, organ_value=1, input_shape=None, num_classes=None):
    """`(model, block names)`: one functional model computing everything the probe gathers per batch.

    With a generator: `slices -> {"probabilities", confidence tensors, "critic_logit", "<block>_mean",
    "<block>_mean_square"}` (the generator's pass itself, with its pre-norm block inputs exposed). Without:
    `[slices, probabilities] -> {confidence tensors, "critic_logit"}` (just `probabilities -> ...` when there
    is no discriminator either), for predictors whose network is not a Keras model (SavedModel, TFLite).
    """
    import keras

    blocks = []
    outputs = {}
    if generator is not None:
        inputs = generator.inputs[0]
        probabilities = generator.outputs[0]
        outputs, blocks = feature_statistics_outputs(generator)
        model_inputs = inputs
    else:
        inputs = keras.Input(tuple(input_shape), name="slices")
        probabilities = keras.Input(tuple(input_shape[:2]) + (int(num_classes),), name="probabilities")
        # Without a critic the slices feed no output, and Keras before 3.13 refuses an unconnected input.
        model_inputs = [inputs, probabilities] if discriminator is not None else probabilities
    outputs.update(confidence_tensors(probabilities, organ_value))
    if discriminator is not None:
        logit = discriminator([inputs, keras.ops.cast(probabilities, "float32")])
        outputs["critic_logit"] = keras.ops.reshape(keras.ops.cast(logit, "float32"), (-1,))
    return keras.Model(model_inputs, outputs, name="quality_probe"), blocks


def subsampled(features, max_grid=STATISTICS_GRID):
    """Every s-th row and column of `[N, H, W, C]` features, s the smallest stride leaving <= `max_grid` rows.

    The block statistics are channel means over thousands of positions per slice: a regular subgrid estimates
    them as well (the estimate is used the same way in calibration and prediction) and reads 1/s² of the map.
    """
    height, width = features.shape[1], features.shape[2]
    stride = max(1, -(-int(height or max_grid) // max_grid), -(-int(width or max_grid) // max_grid))
    return features if stride == 1 else features[:, ::stride, ::stride, :]


def _single_input(layer):
    """True if `layer` was called once on one tensor (its input is exposable in the functional graph)."""
    try:
        tensor = layer.input
    except (AttributeError, ValueError, RuntimeError):  # called several times, or never in this graph
        return False
    return not isinstance(tensor, (list, tuple, dict))


def compiled_forward(model):
    """`x (numpy, or a list for several inputs) -> outputs as numpy (same structure)`, compiled once.

    On TensorFlow the same compilation as `inference.keras_predictor` (unknown batch dimension, no retrace
    for the last batch); other backends use `predict_on_batch`.
    """
    import keras

    multiple = len(model.inputs) > 1
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        specs = [tf.TensorSpec((None,) + tuple(i.shape[1:]), tf.float32) for i in model.inputs]
        forward = tf.function(lambda *xs: model(list(xs) if multiple else xs[0], training=False),
                              input_signature=specs, reduce_retracing=True)  # fmt: skip

        def run(x):
            xs = x if multiple else [x]
            outputs = forward(*[tf.convert_to_tensor(np.asarray(v, np.float32)) for v in xs])
            return keras.tree.map_structure(lambda o: o.numpy(), outputs)

        return run

    def run_other(x):
        xs = [np.asarray(v, np.float32) for v in x] if multiple else np.asarray(x, np.float32)
        return keras.tree.map_structure(np.asarray, model.predict_on_batch(xs))

    return run_other


def moving_statistics(generator, block_names):
    """`{block name: (moving_mean, moving_variance)}` float64 of each pre-norm BatchNorm block."""
    import keras

    stats = {}
    for name in block_names:
        norm = generator.get_layer(name).norm_layer
        stats[name] = (np.asarray(keras.ops.convert_to_numpy(norm.moving_mean), np.float64),
                       np.asarray(keras.ops.convert_to_numpy(norm.moving_variance), np.float64))  # fmt: skip
    return stats


def compute_feature_shift(mean, mean_square, moving_mean, moving_variance):
    """Distance of a scan's per-channel input statistics from a BatchNorm block's moving statistics.

    `mean((μ_c − m_c)² / v_c) + mean(log(σ²_c / v_c)²)` over channels c: the standardized squared shift
    of the mean plus the squared log ratio of the variances. 0 when the scan matches the training statistics.
    """
    mean = np.asarray(mean, np.float64)
    variance = np.maximum(np.asarray(mean_square, np.float64) - mean**2, 0.0)
    moving_variance = np.asarray(moving_variance, np.float64)
    standardized = (mean - np.asarray(moving_mean, np.float64)) ** 2 / (moving_variance + EPSILON)
    log_ratio = np.log((variance + EPSILON) / (moving_variance + EPSILON)) ** 2
    return float(np.mean(standardized) + np.mean(log_ratio))


def components_of(mask):
    """`(number of 26-connected components, largest component / all voxels)` of a boolean 3D mask."""
    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return 0, None
    sizes = np.bincount(labelled.ravel())[1:]
    return int(count), float(sizes.max() / sizes.sum())


class QualityProbe:
    """A predictor wrapper that gathers quality signals while `predict_volume` runs it.

    Args:
        predict: callable `slices -> probabilities` used when neither `generator` nor `feature_statistics`
            is given (an older export, or any callable); the feature-shift signal is then unavailable.
        organ_value: int. The organ class measured (the liver).
        generator: Keras generator or None. When given, probabilities and all statistics come from one
            compiled call of `build_probe_model(generator, ...)`, and `predict` is not called.
        discriminator: Keras model `[x, y] -> logit` or None (then the critic signal is unavailable, unless
            the exported probe of `feature_statistics` carries its own critic).
        unavailable_reasons: dict. Signal name -> why it is unavailable, set by the caller.
        feature_statistics: `exported_statistics.ExportedStatistics` or None, for a model that is not a
            Keras generator but returns its block statistics (the `quality_statistics` signature of an
            exported SavedModel or TFLite file): `forward(slices) -> {"probabilities", "<block>_mean",
            "<block>_mean_square"}` replaces `predict`, and `moving` is `{block: (moving_mean,
            moving_variance)}`. When its `organ_value` equals this probe's, `forward` also returns the
            confidence sums, the organ mask and (`critic`) "critic_logit", and no post-model runs: the probe
            then needs neither Keras nor `discriminator`.
    """

    def __init__(self, predict, organ_value=1, generator=None, discriminator=None, unavailable_reasons=None,
                 feature_statistics=None):  # fmt: skip
        self.predict = predict
        self.organ_value = int(organ_value)
        self.discriminator = discriminator
        self.unavailable = dict(unavailable_reasons or {})
        self.block_names = []
        self._forward = None
        self._statistics = None
        self._post = None
        self._exported_critic = False
        self.generator = generator
        if generator is not None:
            model, self.block_names = build_probe_model(generator, discriminator, self.organ_value)
            self._forward = compiled_forward(model)
            self._moving = moving_statistics(generator, self.block_names)
            if not self.block_names:
                self.unavailable["feature_shift"] = "the generator has no pre-norm BatchNorm block with an exposable input"
        elif feature_statistics is not None:
            self._statistics, self._moving = feature_statistics.forward, feature_statistics.moving
            self.block_names = list(self._moving)
            self._statistics_complete = feature_statistics.is_complete_for(self.organ_value)
            self._exported_critic = feature_statistics.carries_critic_for(self.organ_value)
        else:
            self.unavailable.setdefault("feature_shift", "this model kind does not expose its block inputs")
        if discriminator is None and not self._exported_critic:
            self.unavailable.setdefault("critic_score", "no discriminator beside the model")
        self.reset()

    def reset(self):
        """Forgets the gathered statistics (call before the next volume)."""
        self._sums = {name: [0.0, 0.0] for name in self.block_names}
        self._num_slices = 0
        self._critic_scores, self._organ_pixels, self._masks = [], [], []
        self._entropy = self._max_probability = 0.0
        self._num_region = 0

    def network(self, slices):
        """Probabilities only (no statistics gathered): the probe's network for extra passes."""
        if self._forward is not None:
            return self._forward(np.asarray(slices, np.float32))["probabilities"]
        if self.predict is None:  # only the statistics signature is at hand
            return np.asarray(self._statistics(np.asarray(slices, np.float32))["probabilities"], np.float32)
        return np.asarray(self.predict(slices), np.float32)

    def __call__(self, slices):
        slices = np.asarray(slices, np.float32)
        if self._forward is not None:
            outputs = self._forward(slices)
            probabilities = outputs["probabilities"]
            self._add_block_statistics(outputs)
        else:
            outputs = None
            if self._statistics is not None:
                statistics = self._statistics(slices)
                probabilities = np.asarray(statistics["probabilities"], np.float32)
                self._add_block_statistics(statistics)
                # The exported probe already holds everything, unless only we have a critic to add.
                if self._statistics_complete and ("critic_logit" in statistics or self.discriminator is None):
                    outputs = statistics
            else:
                probabilities = np.asarray(self.predict(slices), np.float32)
            if outputs is None:
                if self._post is None:
                    model, _ = build_probe_model(None, self.discriminator, self.organ_value, slices.shape[1:],
                                                 probabilities.shape[-1])  # fmt: skip
                    self._post = compiled_forward(model)
                outputs = self._post([slices, probabilities] if self.discriminator is not None else probabilities)
        self._num_slices += len(slices)
        organ = outputs["organ"].astype(bool)
        self._masks.append(organ)
        self._organ_pixels.append(organ.sum(axis=(1, 2)))
        if "critic_logit" in outputs:
            self._critic_scores.append(1.0 / (1.0 + np.exp(-outputs["critic_logit"].astype(np.float64))))
        self._entropy += float(outputs["entropy_sum"].sum())
        self._max_probability += float(outputs["max_probability_sum"].sum())
        self._num_region += int(round(float(outputs["region_pixels"].sum())))
        return probabilities

    def _add_block_statistics(self, outputs):
        for name in self.block_names:
            sums = self._sums[name]
            sums[0] = sums[0] + np.asarray(outputs[f"{name}_mean"], np.float64).sum(axis=0)
            sums[1] = sums[1] + np.asarray(outputs[f"{name}_mean_square"], np.float64).sum(axis=0)

    def signals(self, labels=None, voxel_volume_ml=None):
        """The signals of the volume seen since the last `reset` (None where unavailable).

        Args:
            labels: final (post-processed) label map on the input grid, or None.
            voxel_volume_ml: float. Volume of one input voxel, for `organ_volume_ml`.
        """
        organ_pixels = np.concatenate(self._organ_pixels) if self._organ_pixels else np.zeros(0)
        has_organ = organ_pixels > 0
        signals = {"critic_score": None, "feature_shift": None, "mean_entropy": None, "mean_max_probability": None}
        if self._critic_scores and has_organ.any():
            signals["critic_score"] = float(np.concatenate(self._critic_scores)[has_organ].mean())
        if self.block_names and self._num_slices:
            per_block = {}
            for name in self.block_names:
                mean = self._sums[name][0] / self._num_slices
                mean_square = self._sums[name][1] / self._num_slices
                per_block[name] = compute_feature_shift(mean, mean_square, *self._moving[name])
            signals["feature_shift"] = float(np.mean(list(per_block.values())))
            signals["feature_shift_per_block"] = {k: round(v, 6) for k, v in per_block.items()}
        if self._num_region:
            signals["mean_entropy"] = self._entropy / self._num_region
            signals["mean_max_probability"] = self._max_probability / self._num_region
        mask = np.concatenate(self._masks, axis=0) if self._masks else np.zeros((0, 0, 0), bool)
        signals["num_components"], signals["largest_component_fraction"] = components_of(mask)
        signals["organ_fraction_prepared"] = float(mask.mean()) if mask.size else 0.0
        if labels is not None:
            num_voxels = int(np.count_nonzero(np.asarray(labels) == self.organ_value))
            signals["organ_volume_ml"] = num_voxels * float(voxel_volume_ml or 0.0)
        return signals


def perturbation_agreement(predict, volume, data_config, labels, organ_value=1, largest_component_classes=(1,),
                           batch_size=16):  # fmt: skip
    """Mean pairwise Dice of the organ between `labels` and predictions of perturbed copies of `volume`.

    Perturbations (3 extra network passes): intensity gamma 0.7 and 1.4 (on the volume's own intensity range)
    and a half-voxel in-plane shift (linear interpolation). None if every prediction is empty.
    """
    from keras_cdseg.inference.quality.degradations import gamma_intensity, shift_volume
    from keras_cdseg.inference.volume import predict_volume

    masks = [np.asarray(labels) == organ_value]
    for perturbed in (gamma_intensity(volume, 0.7), gamma_intensity(volume, 1.4), shift_volume(volume, 0.5)):
        prediction = predict_volume(predict, perturbed, data_config, largest_component_classes, batch_size)
        masks.append(prediction.labels == organ_value)
    scores = []
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            total = masks[i].sum() + masks[j].sum()
            if total:
                scores.append(2.0 * np.logical_and(masks[i], masks[j]).sum() / total)
    return float(np.mean(scores)) if scores else None
