"""Per-scan quality signals, gathered on the generator's own forward pass.

    slices --QualityProbe--> probabilities (handed on to predict_volume unchanged)
              |  one forward of a functional sub-model: softmax + per-slice channel mean / mean square of
              |  every pre-norm BatchNorm block's input (the statistics that block normalizes)
              |  discriminator(x, softmax) per slice (a separate, small network: the critic)
              |  entropy / max-probability over the predicted organ and a boundary band
              '  the predicted organ mask on the prepared grid (components before post-processing)
    probe.signals(labels, voxel_volume_ml) -> {critic_score, feature_shift, mean_entropy, ...}

A signal that cannot be measured is None (never a made-up value) and `probe.unavailable` says why: no
discriminator beside the model, a model kind (SavedModel, TFLite) that does not expose its block inputs, or
an empty prediction (nothing to aggregate over).
"""

import numpy as np
from scipy import ndimage

EPSILON = 1e-6
BAND_PIXELS = 2


def prenorm_batchnorm_blocks(generator):
    """The generator's `PreNormConvBlock`s that apply BatchNorm to their input (in graph order)."""
    from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

    return [layer for layer in generator.layers
            if isinstance(layer, PreNormConvBlock) and layer.norm == "batch" and layer.norm_first]  # fmt: skip


def build_probe_model(generator):
    """`(sub-model, block names)`: inputs -> [softmax, then per block: channel mean, channel mean square]."""
    import keras

    blocks = prenorm_batchnorm_blocks(generator)
    outputs = [generator.outputs[0]]
    for block in blocks:
        features = keras.ops.cast(block.input, "float32")
        outputs += [keras.ops.mean(features, axis=(1, 2)), keras.ops.mean(keras.ops.square(features), axis=(1, 2))]
    return keras.Model(generator.inputs, outputs, name=f"{generator.name}_quality_probe"), [b.name for b in blocks]


def compiled_forward(model):
    """`x (numpy, or a list for several inputs) -> list of numpy outputs` through one compiled function.

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
            return [o.numpy() for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

        return run

    def run_other(x):
        xs = [np.asarray(v, np.float32) for v in x] if multiple else np.asarray(x, np.float32)
        outputs = model.predict_on_batch(xs)
        return [np.asarray(o) for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]

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


def compute_confidence(probabilities, organ_value, band_pixels=BAND_PIXELS):
    """`(sum of normalized entropy, sum of max probability, pixel count)` over organ + boundary band.

    Args:
        probabilities: `[N, H, W, C]` softmax of a batch.
        organ_value: int. Class whose arg-max region (dilated in-plane by `band_pixels`) is measured.
        band_pixels: int. Width of the boundary band outside the organ. Defaults to 2.
    """
    probabilities = np.asarray(probabilities, np.float32)
    organ = np.argmax(probabilities, axis=-1) == organ_value
    if not organ.any():
        return 0.0, 0.0, 0
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    region = ndimage.binary_dilation(organ, structure=structure, iterations=band_pixels) if band_pixels else organ
    selected = probabilities[region]
    num_classes = probabilities.shape[-1]
    entropy = -np.sum(selected * np.log(np.clip(selected, 1e-12, 1.0)), axis=-1) / np.log(num_classes)
    return float(entropy.sum()), float(selected.max(axis=-1).sum()), int(len(selected))


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
        predict: callable `slices -> probabilities` used when `generator` is None (SavedModel, TFLite, or
            any callable); the feature-shift signal is then unavailable.
        organ_value: int. The organ class measured (the liver).
        generator: Keras generator or None. When given, probabilities and block statistics come from one
            forward pass of a sub-model of it (see `build_probe_model`), and `predict` is not called.
        discriminator: Keras model `(x, y) -> logit` or None (then the critic signal is unavailable).
        unavailable_reasons: dict. Signal name -> why it is unavailable, set by the caller.
    """

    def __init__(self, predict, organ_value=1, generator=None, discriminator=None, unavailable_reasons=None):
        self.predict = predict
        self.organ_value = int(organ_value)
        self.unavailable = dict(unavailable_reasons or {})
        self._forward = None
        self._critic = None
        self.block_names = []
        if generator is not None:
            model, self.block_names = build_probe_model(generator)
            self._forward = compiled_forward(model)
            self._moving = moving_statistics(generator, self.block_names)
            if not self.block_names:
                self.unavailable["feature_shift"] = "the generator has no pre-norm BatchNorm block"
        else:
            self.unavailable.setdefault("feature_shift", "this model kind does not expose its block inputs")
        if discriminator is not None:
            self._critic = compiled_forward(discriminator)
        else:
            self.unavailable.setdefault("critic_score", "no discriminator beside the model")
        self.reset()

    def reset(self):
        """Forgets the gathered statistics (call before the next volume)."""
        self._sums = {name: [0.0, 0.0] for name in self.block_names}
        self._num_slices = 0
        self._critic_scores, self._organ_pixels, self._masks = [], [], []
        self._entropy = self._max_probability = 0.0
        self._num_region = 0

    def __call__(self, slices):
        slices = np.asarray(slices, np.float32)
        if self._forward is not None:
            outputs = self._forward(slices)
            probabilities = np.asarray(outputs[0], np.float32)
            for i, name in enumerate(self.block_names):
                sums = self._sums[name]
                sums[0] = sums[0] + outputs[1 + 2 * i].astype(np.float64).sum(axis=0)
                sums[1] = sums[1] + outputs[2 + 2 * i].astype(np.float64).sum(axis=0)
        else:
            probabilities = np.asarray(self.predict(slices), np.float32)
        self._num_slices += len(slices)
        organ = np.argmax(probabilities, axis=-1) == self.organ_value
        self._masks.append(organ)
        self._organ_pixels.append(organ.sum(axis=(1, 2)))
        if self._critic is not None:
            logits = self._critic([slices, probabilities])[0].reshape(len(slices), -1)[:, 0]
            self._critic_scores.append(1.0 / (1.0 + np.exp(-logits.astype(np.float64))))
        entropy, max_probability, count = compute_confidence(probabilities, self.organ_value)
        self._entropy += entropy
        self._max_probability += max_probability
        self._num_region += count
        return probabilities

    def signals(self, labels=None, voxel_volume_ml=None):
        """The signals of the volume seen since the last `reset` (None where unavailable).

        Args:
            labels: final (post-processed) label map on the input grid, or None.
            voxel_volume_ml: float. Volume of one input voxel, for `organ_volume_ml`.
        """
        organ_pixels = np.concatenate(self._organ_pixels) if self._organ_pixels else np.zeros(0)
        has_organ = organ_pixels > 0
        signals = {"critic_score": None, "feature_shift": None, "mean_entropy": None, "mean_max_probability": None}
        if self._critic is not None and has_organ.any():
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
