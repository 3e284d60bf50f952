"""What each convolution block of a generator passes to the next layer, batch by batch.

The "response" of a block is its output after the activation (PReLU): exactly what the next layer
receives. Both analyses — sparsity (Table 3) and response distributions (Fig. 2) — read it from here.
"""

import keras
import numpy as np

from keras_cdseg.layers.pre_norm_conv_block import PreNormConvBlock


def find_response_blocks(generator):
    """Names of the generator's convolution blocks, in graph order.

    Every `PreNormConvBlock` (and subclass, e.g. Cond-DCN's `ConditionalConvBlock`) that is a direct
    layer of the generator counts. Blocks nested inside other layers (the modality classifier's) are not
    part of the segmentation path and are skipped.

    Args:
        generator: functional `keras.Model`.

    Returns:
        list of str. Raises `ValueError` if the generator has no such block.
    """
    names = [layer.name for layer in generator.layers if isinstance(layer, PreNormConvBlock)]
    if not names:
        raise ValueError(f"Model {generator.name!r} has no PreNormConvBlock layers to analyse.")
    return names


def build_response_model(generator, block_names=None):
    """A `keras.Model` from the generator's input to `{block name: block output}`.

    Args:
        generator: functional `keras.Model` (every builder of this package returns one; so does loading a
            saved generator). Each analysed block must be called exactly once in it.
        block_names: list of str or None. Blocks to expose; None takes `find_response_blocks(generator)`.

    Returns:
        `keras.Model` sharing the generator's weights.
    """
    block_names = list(block_names) if block_names is not None else find_response_blocks(generator)
    outputs = {name: generator.get_layer(name).output for name in block_names}
    # `input`, not `inputs`: a one-element list would make every call warn about the input structure.
    return keras.Model(generator.input, outputs, name=f"{generator.name}_responses")


def iter_batches(slices, batch_size):
    """Yields float32 batches `[b, H, W, C]` from one array `[N, H, W, C]` or an iterable of such arrays.

    Batches of an iterable are re-cut to at most `batch_size` slices; empty arrays are skipped.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size}")
    chunks = [slices] if isinstance(slices, np.ndarray) else slices
    for chunk in chunks:
        chunk = np.asarray(chunk, dtype="float32")
        if chunk.ndim != 4:
            raise ValueError(f"Slices must be [N, H, W, C] arrays. Received shape: {chunk.shape}")
        for start in range(0, len(chunk), batch_size):
            yield chunk[start : start + batch_size]


def iter_block_responses(response_model, slices, batch_size=16):
    """Yields `{block name: float32 numpy array [b, h, w, c]}` for each batch of `slices`.

    The model runs in inference mode (BatchNorm uses its moving statistics), as at test time.

    Args:
        response_model: the result of `build_response_model`.
        slices: array `[N, H, W, C]` or iterable of such arrays (prepared input slices).
        batch_size: int. Slices per forward pass. Defaults to `16`.
    """
    for batch in iter_batches(slices, batch_size):
        outputs = response_model(batch, training=False)
        yield {name: np.asarray(keras.ops.convert_to_numpy(value), dtype="float32") for name, value in outputs.items()}
