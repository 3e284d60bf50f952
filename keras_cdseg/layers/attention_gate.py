import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cdseg")
class AttentionGate(keras.layers.Layer):
    """Additive attention gate on a U-Net skip connection (Attention U-Net).

    The coarser decoder features `g` decide, pixel by pixel, how much of the skip features `x` pass:

        x --Conv(k=s, stride s)--+
                                 +-- ReLU -- Conv1x1(1) -- sigmoid -- α -- Up(s, bilinear) -- α·x
        g -------Conv1x1---------+

    `x` is sub-sampled to the gating resolution (a strided `s×s` convolution, as in the authors' code)
    rather than `g` up-sampled, so the attention is computed on the coarse grid and only the single-channel
    coefficient map α ∈ (0, 1) is resized. The output keeps the shape of `x`.

    Args:
        filters: int. Channels of the intermediate (attention) space.
        strides: int. Resolution ratio between `x` and `g`: `x` is `strides` times larger in height and
            width. `1` when the gating signal is already on the skip's grid. Defaults to `2`.
        **kwargs: Base layer arguments such as `name` and `dtype`.

    Call arguments:
        inputs: a tuple `(x, g)`: skip features `[B, H, W, Cx]` and gating signal
            `[B, H / strides, W / strides, Cg]`.

    Example:
    >>> import numpy as np
    >>> gate = AttentionGate(4, strides=2)
    >>> x, g = np.zeros((2, 32, 32, 8), "float32"), np.zeros((2, 16, 16, 16), "float32")
    >>> tuple(gate((x, g)).shape)
    (2, 32, 32, 8)

    Reference:
    - [Oktay et al., Attention U-Net: Learning Where to Look for the Pancreas](https://arxiv.org/abs/1804.03999)
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(f"`filters` must be a positive int. Received: filters={filters}")
        if not isinstance(strides, int) or strides < 1:
            raise ValueError(f"`strides` must be a positive int. Received: strides={strides}")
        self.filters = filters
        self.strides = strides

        # θ_x has no bias: φ_g's bias already shifts the sum.
        self.skip_projection = keras.layers.Conv2D(
            filters, strides, strides=strides, use_bias=False, dtype=self.dtype_policy, name=f"{self.name}_theta_x"
        )
        self.gating_projection = keras.layers.Conv2D(filters, 1, dtype=self.dtype_policy, name=f"{self.name}_phi_g")
        self.coefficients = keras.layers.Conv2D(
            1, 1, activation="sigmoid", dtype=self.dtype_policy, name=f"{self.name}_psi"
        )
        self.resize = (
            keras.layers.UpSampling2D(
                strides, interpolation="bilinear", dtype=self.dtype_policy, name=f"{self.name}_up"
            )
            if strides > 1
            else None
        )

    def build(self, input_shape):
        x_shape, g_shape = (tuple(s) for s in input_shape)
        for x_size, g_size in zip(x_shape[1:3], g_shape[1:3]):
            if x_size is not None and g_size is not None and x_size != g_size * self.strides:
                raise ValueError(
                    f"The skip features must be `strides` times the gating signal's size. Received: strides="
                    f"{self.strides}, skip shape {x_shape}, gating shape {g_shape}"
                )
        self.skip_projection.build(x_shape)
        self.gating_projection.build(g_shape)
        projected = self.gating_projection.compute_output_shape(g_shape)
        self.coefficients.build(projected)
        if self.resize is not None:
            self.resize.build(self.coefficients.compute_output_shape(projected))

    def call(self, inputs):
        x, g = inputs
        x = ops.cast(x, self.compute_dtype)
        g = ops.cast(g, self.compute_dtype)
        attention = ops.relu(self.skip_projection(x) + self.gating_projection(g))
        alpha = self.coefficients(attention)
        if self.resize is not None:
            alpha = self.resize(alpha)
        return x * alpha

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config
