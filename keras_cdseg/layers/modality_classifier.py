import contextlib
import threading

import keras
from keras import ops

from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock

# Active supervision records per thread, keyed by layer id. Per thread because MirroredStrategy traces
# each replica's step in its own thread, interleaved at cross-replica syncs: a plain attribute would hand
# one replica's labels to another.
_SUPERVISION = threading.local()


@keras.saving.register_keras_serializable(package="keras_cdseg")
class ModalityClassifier(keras.layers.Layer):
    """Small convolutional classifier of the imaging modality of input slices (Cond-DCN's auxiliary net).

        x -- [Conv(s=2) -- PReLU] × num_blocks -- GlobalAveragePool -- Dense(M) -- softmax --> [B, M]

    There is deliberately no normalization: the absolute intensity statistics of the slices are what
    tells CT from MR, and a per-image norm would remove them. The softmax is float32.

    Its prediction is all that is needed at inference. During training the modality labels reach it only
    inside `supervise(...)`: there, a training-mode call makes `weight × cross-entropy` (local batch
    mean) the layer's loss — it shows in `losses` of the layer and of any model containing it, which the
    training step adds to the generator loss — and every call records the prediction. Outside that
    context the layer never sees a label and has no loss.

    Args:
        num_modalities: int. Number of modalities (softmax classes). Defaults to `2`.
        filters: int. Filters of every convolution. Defaults to `8`.
        num_blocks: int. Number of stride-2 convolution blocks. Defaults to `3`.
        kernel_size: int. Convolution kernel size. Defaults to `3`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Example:
    >>> import numpy as np
    >>> classifier = ModalityClassifier(num_modalities=2, filters=4, num_blocks=2)
    >>> tuple(classifier(np.zeros((3, 32, 32, 3), "float32")).shape)
    (3, 2)

    Reference:
    - [Valindria et al., Multi-Modal Learning from Unpaired Images: Application to Multi-Organ
      Segmentation in CT and MRI](https://doi.org/10.1109/WACV.2018.00066)
    """

    def __init__(self, num_modalities=2, filters=8, num_blocks=3, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_modalities, int) or num_modalities < 2:
            raise ValueError(f"`num_modalities` must be an int >= 2. Received: num_modalities={num_modalities}")
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"`num_blocks` must be a positive int. Received: num_blocks={num_blocks}")
        self.num_modalities = num_modalities
        self.filters = filters
        self.num_blocks = num_blocks
        self.kernel_size = kernel_size
        # Blocks are attributes, not a list, so tf.train.Checkpoint finds them (as in ConditionalDiscriminator).
        for i in range(num_blocks):
            block = PreNormConvBlock(
                filters,
                kernel_size=kernel_size,
                strides=2,
                norm=None,
                dtype=self.dtype_policy,
                name=f"{self.name}_block{i}",
            )
            setattr(self, f"block{i}", block)
        self.pool = keras.layers.GlobalAveragePooling2D(dtype=self.dtype_policy, name=f"{self.name}_pool")
        self.logits = keras.layers.Dense(num_modalities, dtype="float32", name=f"{self.name}_logits")

    @property
    def blocks(self):
        return [getattr(self, f"block{i}") for i in range(self.num_blocks)]

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.pool.build(shape)
        self.logits.build(self.pool.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        probabilities = ops.softmax(self.logits(self.pool(x)), axis=-1)
        record = getattr(_SUPERVISION, "records", {}).get(id(self))
        if record is not None:
            self._record(record, probabilities, training)
        return probabilities

    def _record(self, record, probabilities, training):
        per_example = keras.losses.categorical_crossentropy(ops.cast(record["modality_true"], "float32"), probabilities)
        if record["sample_weight"] is not None:
            per_example = per_example * ops.reshape(ops.cast(record["sample_weight"], "float32"), (-1,))
        record["probabilities"] = probabilities
        record["per_example_loss"] = per_example
        record["loss"] = None
        if training:
            # The local mean: the training step divides model losses by the replica count, which makes
            # this `sum / global batch` like every other loss term.
            local_batch = ops.cast(ops.shape(per_example)[0], "float32")
            record["loss"] = record["weight"] * ops.sum(per_example) / local_batch

    def _get_own_losses(self):
        # The supervised loss lives in this thread's record, not in `add_loss`'s list: that list is one per
        # layer, shared by MirroredStrategy's replica threads, which interleave at every cross-replica
        # sync (synchronized BatchNorm, optimizer updates) — a replica would read another replica's loss,
        # unconnected to its own gradient tape. Keras collects a model's losses through this method.
        record = getattr(_SUPERVISION, "records", {}).get(id(self))
        own = super()._get_own_losses()
        return own + [record["loss"]] if record is not None and record["loss"] is not None else own

    @contextlib.contextmanager
    def supervise(self, modality_true, weight=1.0, sample_weight=None):
        """Supervises this layer's calls inside the `with` block.

        Args:
            modality_true: `[B, num_modalities]` one-hot modality labels of the batch the layer will see.
            weight: float. Factor of the cross-entropy added to the layer's losses in training mode.
            sample_weight: `[B]` or None. Per-example weights of the cross-entropy.

        Yields:
            A dict whose `"probabilities"` (`[B, M]`) and `"per_example_loss"` (`[B]`, unweighted by
            `weight`) are filled by the layer's call — in training and inference mode alike.
        """
        records = _SUPERVISION.__dict__.setdefault("records", {})
        if id(self) in records:
            raise RuntimeError(f"Layer {self.name!r} is already being supervised in this thread.")
        record = {
            "modality_true": modality_true,
            "weight": float(weight),
            "sample_weight": sample_weight,
            "probabilities": None,
            "per_example_loss": None,
            "loss": None,
        }
        records[id(self)] = record
        try:
            yield record
        finally:
            del records[id(self)]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_modalities)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_modalities": self.num_modalities,
                "filters": self.filters,
                "num_blocks": self.num_blocks,
                "kernel_size": self.kernel_size,
            }
        )
        return config
