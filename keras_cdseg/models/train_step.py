"""Selects the adversarial `train_step` of the active Keras backend.

`CrossDomainModel` keeps the networks, losses, trackers and public API; only the step that computes
gradients and applies them differs per backend (the keras-io "Customizing what happens in fit()" guides are
the pattern). Each implementation lives in its own module so that TensorFlow is imported only by
`train_step_tensorflow`.
"""

import keras

BACKENDS = ("tensorflow", "jax", "torch")


def backend_train_step(backend=None):
    """The train-step mixin class of `backend` (default: `keras.backend.backend()`)."""
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        from keras_cdseg.models.train_step_tensorflow import TensorFlowTrainStep

        return TensorFlowTrainStep
    if backend == "jax":
        from keras_cdseg.models.train_step_jax import JaxTrainStep

        return JaxTrainStep
    if backend == "torch":
        from keras_cdseg.models.train_step_torch import TorchTrainStep

        return TorchTrainStep
    raise NotImplementedError(f"keras_cdseg trains on the backends {BACKENDS}. Received: backend={backend!r}")
