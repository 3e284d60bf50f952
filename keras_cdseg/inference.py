"""Volume inference: the one code path shared by validation, `cdseg evaluate`, `cdseg predict` and clients.

    volume --prepare_volume--> [S, H, W] --2T+1 context, batches--> predictor --> [B, H, W, C]
           --argmax per batch--> labels --restore to the input grid--> --largest 3D component per organ--> labels

Slices are streamed through the network in batches and reduced to labels batch by batch, so memory for the
network stays flat as volumes grow (probabilities are only kept, as float16, when they are asked for).
"""

import dataclasses
import time

import numpy as np

from keras_cdseg.data.preprocessing import context_stack, prepare_volume, restore_labels, restore_probabilities
from keras_cdseg.postprocessing import keep_largest_component

PROBABILITY_SCALE = 255


def keras_predictor(model):
    """Wraps a Keras model as `predict(slices [N, H, W, 2T+1] float32) -> probabilities [N, H, W, C]`.

    One compiled function with an unknown batch dimension, so the last (smaller) batch does not retrace.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec], reduce_retracing=True)
    return lambda slices: forward(tf.convert_to_tensor(slices, tf.float32)).numpy()


def iter_batches(prepared_image, context, batch_size=16):
    """Yields `(slice_indices, slices [N, H, W, 2T+1] float32)` over a prepared `[S, H, W]` volume."""
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    num_slices = prepared_image.shape[0]
    for start in range(0, num_slices, batch_size):
        indices = np.arange(start, min(start + batch_size, num_slices))
        yield indices, np.ascontiguousarray(context_stack(prepared_image, indices, context), dtype=np.float32)


def predict_prepared(predict, prepared_image, context, batch_size=16):
    """Probabilities for every slice of a prepared `[S, H, W]` volume, `[S, H, W, C]` float32."""
    batches = iter_batches(prepared_image, context, batch_size)
    return np.concatenate([np.asarray(predict(slices), dtype=np.float32) for _, slices in batches], axis=0)


def segment_prepared(predict, prepared_image, context, batch_size=16):
    """Arg-max labels `[S, H, W]` uint8 for a prepared volume (probabilities are dropped batch by batch)."""
    labels, _, _ = _run_network(predict, prepared_image, context, batch_size, keep_probabilities=False)
    return labels


@dataclasses.dataclass(frozen=True, eq=False)
class VolumePrediction:
    """What `predict_volume` returns.

    Args:
        labels: uint8 array with the input volume's shape (post-processed unless disabled).
        probabilities: uint8 `[*shape, C]` with probability × 255 (rounded), or None if not requested.
        geometry: `VolumeGeometry` of the preparation (spacing, orientation, intensity range).
        seconds: dict. Wall time of "prepare", "network" and "postprocess" (restore + largest component).
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    geometry: object
    seconds: dict


def predict_volume(predict, volume, data_config, largest_component_classes=(1,), batch_size=16,
                   with_probabilities=False):
    """Labels (and optionally class probabilities) for a loaded `Volume` on exactly its own voxel grid.

    Args:
        predict: callable `slices [N, H, W, 2T+1] float32 -> probabilities [N, H, W, C]`, e.g.
            `keras_predictor(generator)` or a `keras_cdseg.predictors.Predictor`.
        volume: `Volume` (see `keras_cdseg.data.nifti_io`), any orientation and spacing.
        data_config: `DataConfig` the model was trained with.
        largest_component_classes: class values reduced to their largest 3D (26-connected) component;
            empty or None disables post-processing. Defaults to `(1,)` (the liver).
        batch_size: int. Slices per network call. Defaults to 16.
        with_probabilities: bool. Also return probabilities restored to the input grid (linear
            interpolation per class, then scaled to uint8 0..255; voxels outside the prepared window are
            background with probability 1). They are not post-processed. Defaults to False.

    Returns:
        `VolumePrediction`.
    """
    seconds = {}
    start = time.perf_counter()
    prepared = prepare_volume(volume, data_config)
    seconds["prepare"] = time.perf_counter() - start
    labels, probabilities, seconds["network"] = _run_network(
        predict, prepared.image, data_config.context, batch_size, keep_probabilities=with_probabilities
    )
    start = time.perf_counter()
    labels = restore_labels(labels, prepared.geometry)
    if largest_component_classes:
        labels = keep_largest_component(labels, connectivity=26, classes=list(largest_component_classes))
    restored = None
    if with_probabilities:
        restored = _restore_scaled_probabilities(probabilities, prepared.geometry)
    seconds["postprocess"] = time.perf_counter() - start
    return VolumePrediction(labels=labels, probabilities=restored, geometry=prepared.geometry, seconds=seconds)


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
    return predict_volume(predict, volume, data_config, largest_component_classes, batch_size).labels


def _run_network(predict, prepared_image, context, batch_size, keep_probabilities):
    """Arg-max labels `[S, H, W]`, float16 probabilities (or None) and the seconds spent inside `predict`."""
    num_slices, height, width = prepared_image.shape
    labels = np.empty((num_slices, height, width), dtype=np.uint8)
    probabilities = None
    network_seconds = 0.0
    for indices, slices in iter_batches(prepared_image, context, batch_size):
        start = time.perf_counter()
        batch = np.asarray(predict(slices))
        network_seconds += time.perf_counter() - start
        if batch.shape[:3] != slices.shape[:3]:
            raise ValueError(f"predictor returned shape {batch.shape} for input slices of shape {slices.shape}")
        labels[indices[0] : indices[-1] + 1] = np.argmax(batch, axis=-1)
        if keep_probabilities:
            if probabilities is None:
                probabilities = np.empty((num_slices, height, width, batch.shape[-1]), dtype=np.float16)
            probabilities[indices[0] : indices[-1] + 1] = batch
    return labels, probabilities, network_seconds


def _restore_scaled_probabilities(probabilities, geometry):
    # One class at a time keeps the float32 working set to a single class volume.
    num_classes = probabilities.shape[-1]
    restored = np.empty(tuple(geometry.original_shape) + (num_classes,), dtype=np.uint8)
    for class_index in range(num_classes):
        channel = probabilities[..., class_index : class_index + 1].astype(np.float32)
        background = 0 if class_index == 0 else None
        values = restore_probabilities(channel, geometry, background_class=background)[..., 0]
        np.clip(values, 0.0, 1.0, out=values)
        values *= PROBABILITY_SCALE
        restored[..., class_index] = np.rint(values)
    return restored
