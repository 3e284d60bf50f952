"""Volume inference: the one code path shared by validation, `cdseg evaluate`, `cdseg predict` and clients.

    volume --slab of B + 2T slices: prepare_slices--> --2T+1 context--> predictor --> [B, H, W, C]
           --class probabilities restored in-plane (linear)--> --argmax, write into the uint8 output
           (input axis order)--> ... next slab --largest 3D component per organ, in place--> labels

`predict_volume` streams the volume: clip limits come once from a strided sample of the whole volume, then
each batch of B slices is prepared (with its T neighbours on each side), segmented and restored onto the
input grid before the next one is touched. Beyond the input and the uint8 output, memory holds a few slabs,
whatever the number of slices. Every step works slice by slice, so the result is bit for bit the one of
`prepare_volume` + `predict_prepared` + `restore_probabilities` + arg-max on the whole volume.

Labels come from the probabilities restored onto the input grid, not from the arg-max restored by nearest
neighbour: an organ's edge then falls where its probability crosses that of its neighbour, between the
network's pixels, instead of on the 2.5 mm staircase of the network's grid (nnU-Net resamples its softmax the
same way). On the 34 real scans of the cross-domain benchmark this raised the method's Dice in 131 of 136
organ-scans, by 0.004 (CT) and 0.003 (MR) on average (docs/results.md). Only pixels near an edge are
interpolated (`preprocessing.restore_labels_from_probability_slices`): 0.3-0.4 s more than nearest-neighbour
restoration on a 512 x 512 x 100 CT (docs/serving.md).
"""

import dataclasses
import time

import numpy as np

from keras_cdseg.data.preprocessing import (
    canonical_slices,
    context_stack,
    prepare_slices,
    restore_labels_from_probability_slices,
    restore_probability_slices,
    volume_geometry,
)
from keras_cdseg.inference.postprocessing import keep_largest_component

PROBABILITY_SCALE = 255
# How labels reach the input grid, recorded in evaluation reports (earlier versions: the arg-max, nearest neighbour).
LABEL_RESTORATION = "linear probabilities"


def keras_predictor(model):
    """Wraps a Keras model as `predict(slices [N, H, W, 2T+1] float32) -> probabilities [N, H, W, C]`.

    One compiled function with an unknown batch dimension, so the last (smaller) batch does not retrace.
    Off TensorFlow, the active backend's forward (`inference.predictors.backend_forward`).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        from keras_cdseg.inference.predictors import backend_forward

        return backend_forward(model)
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


def iter_volume_batches(data, geometry, context, batch_size=16):
    """Yields `(slice_indices, slices [N, H, W, 2T+1] float32)` prepared on the fly from a volume as loaded.

    The streaming form of `iter_batches(prepare_volume(...).image, ...)`, with the same values bit for bit:
    each slice is prepared once (`prepare_slices`) and at most `batch_size + 2 * context` prepared slices are
    held. Context past either end repeats the edge slice, as in `context_stack`.

    Args:
        data: image array in its original axis order (e.g. `Volume.data`).
        geometry: `VolumeGeometry` from `volume_geometry` for that volume.
        context: int. T.
        batch_size: int. Slices per batch. Defaults to 16.
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    num_slices = geometry.num_slices
    size = geometry.image_size
    window = np.empty((0, size, size), dtype=np.float32)  # prepared slices window_start:window_start + len
    window_start = 0
    for start in range(0, num_slices, batch_size):
        stop = min(start + batch_size, num_slices)
        needed_start, needed_stop = max(0, start - context), min(num_slices, stop + context)
        # The previous window always reaches at least needed_start, so only new slices are prepared.
        fresh = prepare_slices(data, geometry, window_start + len(window), needed_stop)
        window = np.concatenate([window[needed_start - window_start :], fresh], axis=0)
        window_start = needed_start
        indices = np.arange(start, stop)
        yield indices, np.ascontiguousarray(context_stack(window, indices - window_start, context), dtype=np.float32)


def predict_prepared(predict, prepared_image, context, batch_size=16):
    """Probabilities for every slice of a prepared `[S, H, W]` volume, `[S, H, W, C]` float32."""
    batches = iter_batches(prepared_image, context, batch_size)
    return np.concatenate([np.asarray(predict(slices), dtype=np.float32) for _, slices in batches], axis=0)


def segment_prepared(predict, prepared_image, context, batch_size=16):
    """Arg-max labels `[S, H, W]` uint8 for a prepared volume (probabilities are dropped batch by batch)."""
    labels = np.empty(prepared_image.shape, dtype=np.uint8)
    for indices, batch in _network_batches(predict, iter_batches(prepared_image, context, batch_size), {}):
        labels[indices[0] : indices[-1] + 1] = np.argmax(batch, axis=-1)
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
            `keras_predictor(generator)` or a `keras_cdseg.inference.predictors.Predictor`.
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
    seconds = {"prepare": 0.0, "network": 0.0, "postprocess": 0.0}
    start = time.perf_counter()
    data = np.asarray(volume.data)
    geometry = volume_geometry(volume, data_config)
    # The output takes the input's memory layout (Fortran for NIfTI), so slab writes follow the same strides.
    labels = np.empty_like(data, dtype=np.uint8)
    labels_slices = canonical_slices(labels, geometry)
    probabilities = probabilities_slices = None
    seconds["prepare"] += time.perf_counter() - start
    batches = _timed(iter_volume_batches(data, geometry, data_config.context, batch_size), seconds, "prepare")
    for indices, batch in _network_batches(predict, batches, seconds):
        start = time.perf_counter()
        window = slice(indices[0], indices[-1] + 1)
        labels_slices[window] = restore_labels_from_probability_slices(batch, geometry)
        if with_probabilities:
            if probabilities is None:
                probabilities = np.empty(labels.shape + batch.shape[-1:], dtype=np.uint8)
                probabilities_slices = canonical_slices(probabilities, geometry)
            probabilities_slices[window] = _restore_scaled_probabilities(batch, geometry)
        seconds["postprocess"] += time.perf_counter() - start
    start = time.perf_counter()
    if largest_component_classes:
        keep_largest_component(labels, connectivity=26, classes=list(largest_component_classes), in_place=True)
    seconds["postprocess"] += time.perf_counter() - start
    return VolumePrediction(labels=labels, probabilities=probabilities, geometry=geometry, seconds=seconds)


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


def _timed(iterator, seconds, key):
    """Yields from `iterator`, adding the time spent producing each item to `seconds[key]`."""
    while True:
        start = time.perf_counter()
        item = next(iterator, None)
        seconds[key] += time.perf_counter() - start
        if item is None:
            return
        yield item


def _network_batches(predict, batches, seconds):
    """Yields `(slice_indices, probabilities [N, H, W, C])` per batch; adds time in `predict` to seconds["network"]."""
    for indices, slices in batches:
        start = time.perf_counter()
        batch = np.asarray(predict(slices))
        seconds["network"] = seconds.get("network", 0.0) + time.perf_counter() - start
        if batch.shape[:3] != slices.shape[:3]:
            raise ValueError(f"predictor returned shape {batch.shape} for input slices of shape {slices.shape}")
        yield indices, batch


def _restore_scaled_probabilities(batch, geometry):
    """uint8 probability × 255 of one batch on the original in-plane grid, `[N, n0, n1, C]` in RAS slice order.

    Probabilities pass through float16 (the precision they were once stored in), so results do not
    depend on how the volume is split into batches or on the predictor's output precision beyond that.
    """
    values = restore_probability_slices(batch.astype(np.float16).astype(np.float32), geometry, background_class=0)
    np.clip(values, 0.0, 1.0, out=values)
    values *= PROBABILITY_SCALE
    return np.rint(values).astype(np.uint8)
