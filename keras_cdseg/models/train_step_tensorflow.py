"""`CrossDomainModel.train_step` on TensorFlow: one tape per network, `tf.distribute` aware.

Losses are summed per replica and divided by the *global* batch size (`MirroredStrategy` sums the
replicas' gradients), so an update on N replicas equals the update on one device with the whole batch.
"""

import tensorflow as tf
from keras import ops

from keras_cdseg import losses


class TensorFlowTrainStep:
    """Train and test steps of `CrossDomainModel` for the TensorFlow backend (a mixin)."""

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            self.g_optimizer.build(self.generator.trainable_variables)
            if self.d_optimizer is not None:
                self.d_optimizer.build(self.discriminator.trainable_variables)

    @staticmethod
    def _batch_sizes(x):
        local = ops.cast(ops.shape(x)[0], "float32")
        return local, local * tf.distribute.get_strategy().num_replicas_in_sync

    def train_step(self, data):
        x, y, sample_weight, extra = self._unpack(data, training=True)
        _, global_batch = self._batch_sizes(x)
        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with self._supervision(extra, sample_weight) as record:
            with tf.GradientTape() as g_tape:
                y_pred = self.generator(x, training=True)
                seg_per_example = self._seg_per_example(y, y_pred, sample_weight)
                d_loss_sum = adv_per_example = None
                if self.uses_discriminator:
                    with g_tape.stop_recording():
                        d_loss_sum = self._discriminator_update(x, y, ops.stop_gradient(y_pred), global_batch)
                    fake_logits = self.discriminator((x, y_pred), training=True)
                    adv_per_example = losses.generator_adversarial_loss(fake_logits)
                g_loss = self._generator_loss(
                    seg_per_example, adv_per_example, self.generator.losses, global_batch, num_replicas
                )
                scaled_g_loss = self.g_optimizer.scale_loss(g_loss)
            g_grads = g_tape.gradient(scaled_g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply(g_grads, self.generator.trainable_weights)
        self._update_train_trackers(y, y_pred, seg_per_example, d_loss_sum, adv_per_example, extra, record)
        return self._step_logs()

    def _discriminator_update(self, x, y, y_fake, global_batch):
        with tf.GradientTape() as tape:
            real_logits = self.discriminator((x, y), training=True)
            fake_logits = self.discriminator((x, y_fake), training=True)
            d_per_example = losses.discriminator_loss(real_logits, fake_logits)
            d_loss = ops.sum(d_per_example) / global_batch
            scaled_d_loss = self.d_optimizer.scale_loss(d_loss)
        d_grads = tape.gradient(scaled_d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply(d_grads, self.discriminator.trainable_weights)
        return ops.sum(d_per_example)

    def test_step(self, data):
        x, y, sample_weight, extra = self._unpack(data, training=False)
        with self._supervision(extra, sample_weight) as record:
            y_pred = self.generator(x, training=False)
        return self._step_logs(self._update_test_trackers(y, y_pred, sample_weight, extra, record))

    def _step_logs(self, metrics=None):
        results = self._metric_results(metrics)
        if _in_multi_worker_mode(self.distribute_strategy):
            # Keras 3 reduces multi-worker step logs with `reduce("MEAN", v, axis=0)`, which rejects scalars
            # (tensorflow/tensorflow#72388); a length-1 vector comes out of that reduction as a scalar.
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results


def _in_multi_worker_mode(strategy):
    extended = getattr(strategy, "extended", None)
    in_multi_worker = getattr(extended, "_in_multi_worker_mode", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(in_multi_worker and in_multi_worker())


__all__ = ["TensorFlowTrainStep"]
