"""`CrossDomainModel.train_step` on JAX: stateless, one generator forward, both optimizers in `fit`'s state.

    (ŷ, model losses), vjp_G = jax.vjp(G.stateless_call, θ_G)        one generator forward pass
    θ_D ← d_optimizer.stateless_apply(∇θ_D L_D(θ_D; x ⊕ y, x ⊕ ŷ))    ŷ enters as a constant (stop-gradient)
    ∂L_G/∂ŷ = jax.grad(L_G)(ŷ; θ_D)                                   D with its updated weights, as on TF
    θ_G ← g_optimizer.stateless_apply(vjp_G(∂L_G/∂ŷ))

Keras' JAX trainer threads `(trainable, non_trainable, optimizer, metrics)` variable values through the
jitted step; here the "optimizer" part holds the generator's optimizer variables followed by the
discriminator's, so `fit`, `train_on_batch`, `jax_state_sync` and sharding see both optimizers.

Under `keras.distribution.DataParallel` the step is one SPMD program over the global batch: the losses
are means over the whole batch and BatchNorm statistics are taken over the whole batch, which is exactly
what `MirroredStrategy` with synchronized BatchNorm and `sum / global batch` losses computes.
"""

import jax
import keras
from keras import ops

from keras_cdseg import losses


class JaxTrainStep:
    """Train and test steps of `CrossDomainModel` for the JAX backend (a mixin)."""

    def _build_optimizers(self):
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer is not None:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    # ---- the step

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_values, metrics_values = state
        trainable, non_trainable = list(trainable), list(non_trainable)
        x, y, sample_weight, extra = self._unpack(data, training=True)
        batch = ops.cast(ops.shape(x)[0], "float32")  # the global batch: the step is one SPMD program
        g_t, g_n = self._positions(self.generator)
        g_tv, g_ntv = [trainable[i] for i in g_t], [non_trainable[i] for i in g_n]
        num_g_opt = len(self.g_optimizer.variables)
        g_opt, d_opt = list(optimizer_values[:num_g_opt]), list(optimizer_values[num_g_opt:])

        with self._supervision(extra, sample_weight) as record:

            def generator_forward(g_tv):
                y_pred, new_g_ntv, model_losses = self.generator.stateless_call(
                    g_tv, g_ntv, x, training=True, return_losses=True
                )
                return (y_pred, list(model_losses)), (new_g_ntv, self._record_outputs(record))

            (y_pred, model_losses), generator_vjp, (g_ntv, recorded) = jax.vjp(generator_forward, g_tv, has_aux=True)
            if record is not None:
                record.update(recorded)  # the traced forward's values, as concrete step values

            d_loss_sum = None
            if self.uses_discriminator:
                d_t, d_n = self._positions(self.discriminator)
                d_tv, d_ntv = [trainable[i] for i in d_t], [non_trainable[i] for i in d_n]
                y_fake = jax.lax.stop_gradient(y_pred)

                def discriminator_loss(d_tv, d_ntv):
                    real_logits, d_ntv = self.discriminator.stateless_call(d_tv, d_ntv, (x, y), training=True)
                    fake_logits, d_ntv = self.discriminator.stateless_call(d_tv, d_ntv, (x, y_fake), training=True)
                    d_per_example = losses.discriminator_loss(real_logits, fake_logits)
                    d_loss = _scale_loss(self.d_optimizer, d_opt, ops.sum(d_per_example) / batch)
                    return d_loss, (ops.sum(d_per_example), d_ntv)

                (_, (d_loss_sum, d_ntv)), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(d_tv, d_ntv)
                d_tv, d_opt = self.d_optimizer.stateless_apply(d_opt, d_grads, d_tv)

            def generator_loss(y_pred, model_losses, d_state):
                seg_per_example = self._seg_per_example(y, y_pred, sample_weight)
                adv_per_example = None
                if self.uses_discriminator:
                    d_tv, d_ntv = d_state
                    fake_logits, d_ntv = self.discriminator.stateless_call(d_tv, d_ntv, (x, y_pred), training=True)
                    adv_per_example = losses.generator_adversarial_loss(fake_logits)
                    d_state = (d_tv, d_ntv)
                g_loss = self._generator_loss(seg_per_example, adv_per_example, model_losses, batch, 1)
                return _scale_loss(self.g_optimizer, g_opt, g_loss), (seg_per_example, adv_per_example, d_state)

            d_state = (d_tv, d_ntv) if self.uses_discriminator else ()
            (_, (seg_per_example, adv_per_example, d_state)), cotangents = jax.value_and_grad(
                generator_loss, argnums=(0, 1), has_aux=True
            )(y_pred, model_losses, d_state)
            (g_grads,) = generator_vjp(cotangents)
            g_tv, g_opt = self.g_optimizer.stateless_apply(g_opt, g_grads, g_tv)

        _put(trainable, g_t, g_tv)
        _put(non_trainable, g_n, g_ntv)
        if self.uses_discriminator:
            d_tv, d_ntv = d_state
            _put(trainable, d_t, d_tv)
            _put(non_trainable, d_n, d_ntv)
        logs, metrics_values = self._stateless_metrics(
            metrics_values,
            lambda: self._update_train_trackers(
                y, y_pred, seg_per_example, d_loss_sum, adv_per_example, extra, record
            ),
        )
        return logs, (trainable, non_trainable, list(g_opt) + list(d_opt), metrics_values)

    def test_step(self, state, data):
        trainable, non_trainable, metrics_values = state
        non_trainable = list(non_trainable)
        x, y, sample_weight, extra = self._unpack(data, training=False)
        g_t, g_n = self._positions(self.generator)
        with self._supervision(extra, sample_weight) as record:
            y_pred, g_ntv = self.generator.stateless_call(
                [trainable[i] for i in g_t], [non_trainable[i] for i in g_n], x, training=False
            )
            reported = []
            logs, metrics_values = self._stateless_metrics(
                metrics_values,
                lambda: reported.extend(self._update_test_trackers(y, y_pred, sample_weight, extra, record)),
                reported,
            )
        _put(non_trainable, g_n, g_ntv)
        return logs, (trainable, non_trainable, metrics_values)

    def _stateless_metrics(self, metrics_values, update, reported=None):
        """Runs `update()` (stateful tracker code) on `metrics_values`; returns (logs, new metrics values)."""
        mapping = list(zip(self.metrics_variables, metrics_values))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            update()
            logs = self._metric_results(reported or None)
        new_values = []
        for variable, old in mapping:
            value = scope.get_current_value(variable)
            new_values.append(old if value is None else value)
        return logs, new_values

    def _step_logs(self, metrics=None):
        return self._metric_results(metrics)

    def _positions(self, network):
        """Indices of `network`'s trainable and non-trainable variables in the model's lists."""
        trainable = {id(v): i for i, v in enumerate(self.trainable_variables)}
        non_trainable = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        return (
            [trainable[id(v)] for v in network.trainable_variables],
            [non_trainable[id(v)] for v in network.non_trainable_variables],
        )

    # ---- Keras' JAX trainer state: both optimizers' variables where it has `self.optimizer.variables`

    def _all_optimizer_variables(self):
        variables = list(self.optimizer.variables) if getattr(self, "optimizer", None) is not None else []
        if getattr(self, "d_optimizer", None) is not None:
            variables += list(self.d_optimizer.variables)
        return variables

    def _get_jax_state(
        self,
        trainable_variables=False,
        non_trainable_variables=False,
        optimizer_variables=False,
        metrics_variables=False,
        purge_model_variables=False,
    ):
        state = [
            part
            for wanted, part in (
                (trainable_variables, self.trainable_variables),
                (non_trainable_variables, self.non_trainable_variables),
                (optimizer_variables, self._all_optimizer_variables()),
                (metrics_variables, self.metrics_variables),
            )
            if wanted
        ]
        values = tuple([v.value for v in part] for part in state)
        if purge_model_variables:
            for part in state:
                for v in part:
                    v._value = None
        return values

    def jax_state_sync(self):
        jax_state = getattr(self, "_jax_state", None)
        if not jax_state or self._jax_state_synced:
            return
        optimizer_values = jax_state.pop("optimizer_variables", None)
        if optimizer_values:
            for variable, value in zip(self._all_optimizer_variables(), optimizer_values):
                variable.assign(value)
        super().jax_state_sync()

    def _get_state_sharding_spec(self):
        trainable, non_trainable, _, metrics = super()._get_state_sharding_spec()
        return trainable, non_trainable, [v.value.sharding for v in self._all_optimizer_variables()], metrics


def _scale_loss(optimizer, optimizer_values, loss):
    # A LossScaleOptimizer reads its scale variable: give it this step's value.
    with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
        return optimizer.scale_loss(loss)


def _put(values, positions, new_values):
    for i, value in zip(positions, new_values):
        values[i] = value
