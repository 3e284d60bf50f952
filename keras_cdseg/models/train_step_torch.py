"""`CrossDomainModel.train_step` on PyTorch: eager autograd, one generator forward per step.

The same order as on TensorFlow and JAX: the discriminator is updated on `ŷ.detach()`, then the generator
loss scores `x ⊕ ŷ` with the updated discriminator and is differentiated with respect to the generator
only (`torch.autograd.grad`, so no gradient accumulates in the discriminator's parameters).
"""

import torch

from keras_cdseg import losses


class TorchTrainStep:
    """Train and test steps of `CrossDomainModel` for the PyTorch backend (a mixin)."""

    def _build_optimizers(self):
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer is not None:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def train_step(self, data):
        x, y, sample_weight, extra = self._unpack(data, training=True)
        batch = float(x.shape[0])
        with self._supervision(extra, sample_weight) as record:
            y_pred = self.generator(x, training=True)
            seg_per_example = self._seg_per_example(y, y_pred, sample_weight)
            d_loss_sum = adv_per_example = None
            if self.uses_discriminator:
                d_loss_sum = self._discriminator_update(x, y, y_pred.detach(), batch)
                fake_logits = self.discriminator((x, y_pred), training=True)
                adv_per_example = losses.generator_adversarial_loss(fake_logits)
            g_loss = self._generator_loss(seg_per_example, adv_per_example, self.generator.losses, batch, 1)
            _apply(self.g_optimizer, self.g_optimizer.scale_loss(g_loss), self.generator.trainable_weights)
        with torch.no_grad():
            self._update_train_trackers(
                y, y_pred.detach(), seg_per_example.detach(), d_loss_sum, adv_per_example, extra, record
            )
        return self._metric_results()

    def _discriminator_update(self, x, y, y_fake, batch):
        real_logits = self.discriminator((x, y), training=True)
        fake_logits = self.discriminator((x, y_fake), training=True)
        d_per_example = losses.discriminator_loss(real_logits, fake_logits)
        d_loss = d_per_example.sum() / batch
        _apply(self.d_optimizer, self.d_optimizer.scale_loss(d_loss), self.discriminator.trainable_weights)
        return d_per_example.detach().sum()

    def test_step(self, data):
        x, y, sample_weight, extra = self._unpack(data, training=False)
        with torch.no_grad(), self._supervision(extra, sample_weight) as record:
            y_pred = self.generator(x, training=False)
            return self._metric_results(self._update_test_trackers(y, y_pred, sample_weight, extra, record))

    def _step_logs(self, metrics=None):
        return self._metric_results(metrics)


def _apply(optimizer, loss, weights):
    grads = torch.autograd.grad(loss, [w.value for w in weights], allow_unused=True)
    grads = [torch.zeros_like(w.value) if g is None else g for g, w in zip(grads, weights)]
    with torch.no_grad():
        optimizer.apply(grads, weights)
