"""Volume inference: the one code path shared by validation, `cdseg evaluate`, `cdseg predict` and clients.

    volume --prepare_volume--> [S, H, W] --2T+1 context, batches--> predictor --> [S, H, W, C]
           --argmax--> labels --restore to the input grid--> --largest 3D component per organ--> labels

Slices are streamed through the network in batches, so memory for the network stays flat as volumes grow.
"""

import numpy as np

from keras_cdseg.data.preprocessing import context_stack, prepare_volume, restore_labels
from keras_cdseg.postprocessing import keep_largest_component


def keras_predictor(model):
    """Wraps a Keras model as `predict(slices [N, H, W, 2T+1] float32) -> probabilities [N, H, W, C]`.

    One compiled function with an unknown batch dimension, so the last (smaller) batch does not retrace.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
    return lambda slices: forward(tf.convert_to_tensor(slices, tf.float32)).numpy()


def predict_prepared(predict, prepared_image, context, batch_size=16):
    """Probabilities for every slice of a prepared `[S, H, W]` volume, `[S, H, W, C]` float32."""
    num_slices = prepared_image.shape[0]
    outputs = []
    for start in range(0, num_slices, batch_size):
        indices = np.arange(start, min(start + batch_size, num_slices))
        outputs.append(np.asarray(predict(context_stack(prepared_image, indices, context)), dtype=np.float32))
    return np.concatenate(outputs, axis=0)


def segment_prepared(predict, prepared_image, context, batch_size=16):
    """Arg-max labels `[S, H, W]` uint8 for a prepared volume."""
    return np.argmax(predict_prepared(predict, prepared_image, context, batch_size), axis=-1).astype(np.uint8)


def segment_volume(predict, volume, data_config, largest_component_classes=(1,), batch_size=16):
    """Labels for a loaded `Volume` on exactly its own voxel grid.

    Args:
        predict: callable, e.g. `keras_predictor(generator)`.
        volume: `Volume` (see `keras_cdseg.data.nifti_io`).
        data_config: `DataConfig` the model was trained with.
        largest_component_classes: class values reduced to their largest 3D (26-connected) component;
            empty or None disables post-processing. Defaults to `(1,)` (the liver).
        batch_size: int. Slices per network call.

    Returns:
        uint8 array with `volume.shape`.
    """
    prepared = prepare_volume(volume, data_config)
    labels = segment_prepared(predict, prepared.image, data_config.context, batch_size)
    labels = restore_labels(labels, prepared.geometry)
    if largest_component_classes:
        labels = keep_largest_component(labels, connectivity=26, classes=list(largest_component_classes))
    return labels
