import keras
from keras import ops

from keras_cdseg.layers.modality_classifier import ModalityClassifier
from keras_cdseg.models.cross_domain_model import CrossDomainModel

TARGET_KEYS = ("segmentation", "modality")


@keras.saving.register_keras_serializable(package="keras_cdseg")
class ConditionalDomainModel(CrossDomainModel):
    """`CrossDomainModel` for Cond-DCN: the one variant that learns from modality labels.

    The generator (see `build_conditional_segmenter`) contains a `ModalityClassifier` whose prediction
    conditions every block. Training data carries the modality label next to the segmentation:

        data = (x, {"segmentation": y_onehot [B, H, W, C], "modality": m_onehot [B, M]}[, sample_weight])

    and the generator loss gains the classifier's cross-entropy:

        L_G = CE(y, ŷ) + adversarial_weight · BCE(D(x ⊕ ŷ), 1) + modality_weight · CE(m, m̂(x))

    Everything else — one generator forward per step, the discriminator update, `sum / global batch`
    losses on every backend — is `CrossDomainModel.train_step`, unchanged: the modality term enters it as
    a loss of the generator (`generator.losses`, or the losses `stateless_call` returns on JAX), added by
    the classifier while it is supervised.
    `modality_loss` (the unweighted cross-entropy) and `modality_accuracy` are tracked. Inference uses
    `x` alone: `model(x)` / `predict(x)` return the segmentation softmax, conditioned on the classifier's
    own prediction. `evaluate` accepts the same dict targets, or a plain `y_onehot` when no modality
    labels are at hand (then only the segmentation metrics are reported).

    Args:
        generator: `keras.Model` with exactly one `ModalityClassifier` layer, mapping slices to softmax
            probabilities `[B, H, W, C]`.
        discriminator: `keras.layers.Layer` or None. Maps `(x, y)` to a `[B, 1]` logit.
        class_names: list of str or None. Names for the per-class Dice trackers.
        modality_names: list of str or None. Modality of each one-hot index of the `"modality"` target,
            e.g. `["CT", "MR"]`; defaults to `modality0`, `modality1`, ...
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:
    >>> import numpy as np
    >>> from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter
    >>> model = ConditionalDomainModel(
    ...     build_conditional_segmenter((32, 32, 3), base_filters=4, depth=2), modality_names=["CT", "MR"]
    ... )
    >>> model.compile(keras.optimizers.Adam(1e-3), adversarial_weight=0.0, modality_weight=1.0)
    >>> x = np.zeros((2, 32, 32, 3), "float32")
    >>> targets = {"segmentation": np.eye(2, dtype="float32")[np.zeros((2, 32, 32), int)],
    ...            "modality": np.eye(2, dtype="float32")}
    >>> sorted(model.train_on_batch(x, targets, return_dict=True))
    ['dice_class0', 'dice_class1', 'modality_accuracy', 'modality_loss', 'seg_loss']

    Reference:
    - [Valindria et al., Multi-Modal Learning from Unpaired Images: Application to Multi-Organ
      Segmentation in CT and MRI](https://doi.org/10.1109/WACV.2018.00066)
    """

    def __init__(self, generator, discriminator=None, class_names=None, modality_names=None, **kwargs):
        num_modalities = _find_classifier(generator).num_modalities
        if modality_names is not None and len(modality_names) != num_modalities:
            raise ValueError(
                f"`modality_names` must have num_modalities={num_modalities} entries. "
                f"Received: modality_names={modality_names}"
            )
        super().__init__(generator, discriminator, class_names=class_names, **kwargs)
        self.modality_names = (
            list(modality_names) if modality_names else [f"modality{i}" for i in range(num_modalities)]
        )
        self.modality_weight = 1.0

    def build(self, input_shape):
        # `CrossDomainModel.__init__` builds, and building locks the model's state: the trackers must be
        # created here, not after `super().__init__()`.
        if not hasattr(self, "modality_loss_tracker"):
            self.modality_loss_tracker = keras.metrics.Mean(name="modality_loss")
            self.modality_accuracy = keras.metrics.CategoricalAccuracy(name="modality_accuracy")
        super().build(input_shape)

    @property
    def modality_classifier(self):
        # Looked up, not stored: a second attribute would make Keras track the generator's layer twice.
        return _find_classifier(self.generator)

    def compile(self, g_optimizer=None, d_optimizer=None, adversarial_weight=1e-3, modality_weight=1.0, **kwargs):
        if not modality_weight >= 0:
            raise ValueError(f"`modality_weight` must be >= 0. Received: modality_weight={modality_weight}")
        super().compile(g_optimizer, d_optimizer, adversarial_weight=adversarial_weight, **kwargs)
        self.modality_weight = float(modality_weight)

    @property
    def metrics(self):
        return super().metrics + [self.modality_loss_tracker, self.modality_accuracy]

    # Hooks of `CrossDomainModel`'s backend-neutral step (see `train_step.py`).

    def _unpack(self, data, training):
        x, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not training and not isinstance(targets, dict):
            return x, targets, sample_weight, None  # evaluation without modality labels
        y, modality_true = _split_targets(targets)
        return x, y, sample_weight, modality_true

    def _supervision(self, extra, sample_weight):
        if extra is None:
            return super()._supervision(extra, sample_weight)
        return self.modality_classifier.supervise(extra, self.modality_weight, sample_weight)

    def _record_outputs(self, record):
        if record is None:
            return {}
        return {"probabilities": record["probabilities"], "per_example_loss": record["per_example_loss"]}

    def _update_extra_trackers(self, extra, record):
        if extra is not None:
            self._track_modality(extra, record)

    def _extra_trackers(self, extra):
        return [] if extra is None else [self.modality_loss_tracker, self.modality_accuracy]

    def _track_modality(self, modality_true, record):
        if record["probabilities"] is None:
            raise RuntimeError("The generator's forward pass did not call its ModalityClassifier.")
        per_example = record["per_example_loss"]
        local_batch = ops.cast(ops.shape(per_example)[0], "float32")
        self.modality_loss_tracker.update_state(ops.sum(per_example) / local_batch, sample_weight=local_batch)
        self.modality_accuracy.update_state(modality_true, record["probabilities"])

    def get_config(self):
        config = super().get_config()
        config["modality_names"] = self.modality_names
        return config

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config["modality_weight"] = self.modality_weight
        return config

    def compile_from_config(self, config):
        super().compile_from_config(config)
        self.modality_weight = float(config.get("modality_weight", 1.0))


def _find_classifier(generator):
    classifiers = [layer for layer in generator.layers if isinstance(layer, ModalityClassifier)]
    if len(classifiers) != 1:
        raise ValueError(
            f"The generator must contain exactly one ModalityClassifier layer. Received: {len(classifiers)} in "
            f"{generator.name!r}"
        )
    return classifiers[0]


def _split_targets(targets):
    if not isinstance(targets, dict) or set(targets) != set(TARGET_KEYS):
        received = sorted(targets) if isinstance(targets, dict) else type(targets).__name__
        raise ValueError(
            f"ConditionalDomainModel trains on (x, {{'segmentation': y_onehot, 'modality': m_onehot}}). "
            f"Received targets: {received}"
        )
    return targets["segmentation"], targets["modality"]
