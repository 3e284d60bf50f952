import contextlib
import copy

import keras
from keras import ops

from keras_cdseg import losses
from keras_cdseg.models.dice_score import DiceScore
from keras_cdseg.models.train_step import backend_train_step


@keras.saving.register_keras_serializable(package="keras_cdseg")
class CrossDomainModel(backend_train_step(), keras.Model):
    """A segmenter trained with a conditional adversarial loss (CAN), modality-blind.

    Each `train_step` makes one discriminator update, then one generator update:

        ŷ = G(x)                                          (one generator forward pass per step)
        L_D = BCE(D(x ⊕ y), 1) + BCE(D(x ⊕ stop_gradient(ŷ)), 0)
        L_G = CE(y, ŷ) + adversarial_weight · BCE(D(x ⊕ ŷ), 1)

    The discriminator's "fake" input reuses the generator's training-mode prediction, so the adversarial
    step costs one generator forward, not two. With `adversarial_weight=0` or no discriminator the step is
    plain cross-entropy training (the paper's "w/o CAN" ablation) and no discriminator work is done.

    Losses are summed per replica and divided by the *global* batch size, so an update on N replicas
    equals the update on one device with the whole batch. No modality label is used anywhere.

    The networks, losses and trackers are backend-neutral (`keras.ops`); `train_step` / `test_step` come
    from the active backend's mixin (`train_step.backend_train_step()`): TensorFlow (gradient tapes,
    `tf.distribute`), JAX (stateless: `stateless_call`, `jax.vjp` / `jax.value_and_grad`, both optimizers'
    `stateless_apply`, their variables threaded through `fit`; `keras.distribution.DataParallel`) and
    PyTorch (autograd). All three make the same update from the same weights and batch.

    Args:
        generator: `keras.Model`. Maps `[B, H, W, 2T+1]` slices to softmax probabilities `[B, H, W, C]`.
        discriminator: `keras.layers.Layer` or None. Maps `(x, y)` to a `[B, 1]` logit.
        class_names: list of str or None. Names for the per-class Dice trackers (`dice_<name>`).
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:
    >>> from keras_cdseg.models.segmenter import build_segmenter, build_discriminator
    >>> model = CrossDomainModel(
    ...     build_segmenter((32, 32, 3), base_filters=4, depth=2),
    ...     build_discriminator(filters=4, num_blocks=2, dense_units=8),
    ...     class_names=["background", "liver"],
    ... )
    >>> model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=1e-3)

    Reference:
    - [Baydar et al., Cross-Domain Segmentation with Adversarial Loss and Covariate Shift for Biomedical
      Imaging](https://arxiv.org/abs/2006.04390)
    """

    def __init__(self, generator, discriminator=None, class_names=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        num_classes = generator.output_shape[-1]
        self.class_names = list(class_names) if class_names else [f"class{i}" for i in range(num_classes)]
        self.adversarial_weight = 0.0
        self.seg_loss = "ce"
        self.seg_loss_tracker = keras.metrics.Mean(name="seg_loss")
        self.g_adv_loss_tracker = keras.metrics.Mean(name="g_adv_loss")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.dice_metric = DiceScore(num_classes, class_names=self.class_names, name="dice")
        self.build(generator.input_shape)

    def build(self, input_shape):
        if self.discriminator is not None and not self.discriminator.built:
            self.discriminator.build((tuple(input_shape), tuple(self.generator.output_shape)))
        self.built = True

    def call(self, inputs, training=None):
        return self.generator(inputs, training=training)

    def compile(self, g_optimizer=None, d_optimizer=None, adversarial_weight=1e-3, seg_loss="ce", **kwargs):
        if adversarial_weight < 0:
            raise ValueError(f"`adversarial_weight` must be >= 0. Received: adversarial_weight={adversarial_weight}")
        if seg_loss not in losses.SEGMENTATION_LOSSES:
            raise ValueError(f"`seg_loss` must be one of {losses.SEGMENTATION_LOSSES}. Received: seg_loss={seg_loss!r}")
        self.seg_loss = seg_loss
        g_optimizer = g_optimizer if g_optimizer is not None else keras.optimizers.Adam(1e-3)
        # Keras tracks (and, under mixed_float16, loss-scales) `optimizer`: that is the generator's.
        super().compile(optimizer=g_optimizer, **kwargs)
        self.adversarial_weight = float(adversarial_weight)
        if self.uses_discriminator:
            d_optimizer = d_optimizer if d_optimizer is not None else keras.optimizers.Adam(1e-3)
            if self.dtype_policy.name == "mixed_float16" and not isinstance(
                d_optimizer, keras.optimizers.LossScaleOptimizer
            ):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer, name="d_loss_scale_optimizer")
        self.d_optimizer = d_optimizer if self.uses_discriminator else None
        # Build optimizer slots now, each for its own network (under TensorFlow: in the model's strategy).
        # Left to Keras, the generator's optimizer would get slots for every model variable, and the
        # discriminator's would be built lazily inside the replicated step, where replicas can disagree on
        # its collectives.
        self._build_optimizers()

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Networks, trackers and both optimizers are built in __init__/compile. Keras' symbolic build would
        # only peek at the first distributed batch, which (a) fails under MultiWorkerMirroredStrategy and
        # (b) with `steps_per_epoch` silently consumes that batch, so a distributed run would skip data a
        # single-device run trains on.
        return

    @property
    def g_optimizer(self):
        return self.optimizer

    @property
    def uses_discriminator(self):
        return self.discriminator is not None and self.adversarial_weight > 0

    @property
    def metrics(self):
        trackers = [self.seg_loss_tracker]
        if self.uses_discriminator:
            trackers += [self.g_adv_loss_tracker, self.d_loss_tracker]
        return trackers + [self.dice_metric]

    def _metric_results(self, metrics=None):
        results = {}
        for metric in self.metrics if metrics is None else metrics:
            value = metric.result()
            results.update(value if isinstance(value, dict) else {metric.name: value})
        return results

    def get_metrics_result(self):
        # Evaluation never updates the adversarial trackers; leaving them out keeps `evaluate()` and the
        # `val_*` logs to what was measured (and lets Keras return plain floats).
        measured = [
            m for m in self.metrics if not (isinstance(m, keras.metrics.Mean) and float(ops.convert_to_numpy(m.count)) == 0)
        ]
        return {name: float(value) for name, value in self._metric_results(measured).items()}

    # ---- Backend-neutral pieces of the step; each backend's `train_step` (see `train_step.py`) calls them.

    def _unpack(self, data, training):
        """`(x, y_onehot, sample_weight, extra)` of a batch; `extra` is what a subclass supervises (None)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return x, y, sample_weight, None

    def _supervision(self, extra, sample_weight):
        """Context active around the generator's forward pass; yields a record the trackers read (None)."""
        return contextlib.nullcontext(None)

    def _record_outputs(self, record):
        """Arrays a forward pass writes into the supervision record, to carry out of a traced function."""
        return {}

    def _seg_per_example(self, y, y_pred, sample_weight):
        return _weighted(losses.segmentation_loss(y, y_pred, self.seg_loss), sample_weight)

    def _generator_loss(self, seg_per_example, adv_per_example, model_losses, global_batch, num_replicas):
        """`sum(CE) / B + w · sum(BCE(D(x ⊕ ŷ), 1)) / B + model losses / replicas` (B = global batch)."""
        g_loss = ops.sum(seg_per_example) / global_batch
        if adv_per_example is not None:
            g_loss = g_loss + self.adversarial_weight * ops.sum(adv_per_example) / global_batch
        if model_losses:
            g_loss = g_loss + ops.sum(ops.stack([ops.cast(v, "float32") for v in model_losses])) / num_replicas
        return g_loss

    def _update_train_trackers(self, y, y_pred, seg_per_example, d_loss_sum, adv_per_example, extra, record):
        # Trackers take the local mean weighted by the local batch; replicas' sums are then combined.
        local_batch = ops.cast(ops.shape(seg_per_example)[0], "float32")
        self.seg_loss_tracker.update_state(ops.sum(seg_per_example) / local_batch, sample_weight=local_batch)
        if adv_per_example is not None:
            self.d_loss_tracker.update_state(d_loss_sum / local_batch, sample_weight=local_batch)
            self.g_adv_loss_tracker.update_state(ops.mean(adv_per_example), sample_weight=local_batch)
        self.dice_metric.update_state(y, y_pred)
        self._update_extra_trackers(extra, record)

    def _update_test_trackers(self, y, y_pred, sample_weight, extra, record):
        """Updates the evaluation trackers; returns the trackers an evaluation step reports."""
        seg_per_example = self._seg_per_example(y, y_pred, sample_weight)
        local_batch = ops.cast(ops.shape(seg_per_example)[0], "float32")
        self.seg_loss_tracker.update_state(ops.sum(seg_per_example) / local_batch, sample_weight=local_batch)
        self.dice_metric.update_state(y, y_pred)
        self._update_extra_trackers(extra, record)
        return [self.seg_loss_tracker, self.dice_metric] + self._extra_trackers(extra)

    def _update_extra_trackers(self, extra, record):
        return

    def _extra_trackers(self, extra):
        return []

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": (
                    keras.saving.serialize_keras_object(self.discriminator) if self.discriminator is not None else None
                ),
                "class_names": self.class_names,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Keras' deserializer consumes nested dicts; work on a copy so the caller's config survives.
        config = copy.deepcopy(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        if config.get("discriminator") is not None:
            config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

    def get_compile_config(self):
        if self.optimizer is None:
            return None
        return {
            "g_optimizer": keras.saving.serialize_keras_object(_unwrap(self.g_optimizer)),
            "d_optimizer": keras.saving.serialize_keras_object(_unwrap(self.d_optimizer)) if self.d_optimizer else None,
            "adversarial_weight": self.adversarial_weight,
            "seg_loss": self.seg_loss,
        }

    def compile_from_config(self, config):
        g_optimizer = keras.saving.deserialize_keras_object(config["g_optimizer"])
        d_optimizer = config.get("d_optimizer")
        d_optimizer = keras.saving.deserialize_keras_object(d_optimizer) if d_optimizer else None
        self.compile(g_optimizer, d_optimizer, adversarial_weight=config["adversarial_weight"],
                     seg_loss=config.get("seg_loss", "ce"))  # fmt: skip


def _weighted(per_example, sample_weight):
    if sample_weight is None:
        return per_example
    return per_example * ops.reshape(ops.cast(sample_weight, per_example.dtype), (-1,))


def _unwrap(optimizer):
    # Loss scaling is re-applied by `compile` from the dtype policy; save the inner optimizer.
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.inner_optimizer
    return optimizer
