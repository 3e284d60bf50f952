"""The SavedModel's `segment_volume` signature: a raw volume in, labels and organ volumes out, all in the graph.

    volume [X, Y, Z] (canonical RAS voxel order, float32 or int16) + spacing_mm float64 [3]
      --percentile clip, map to [0, 1]-- --linear in-plane resampling, centre pad/crop-- --2T+1 context--
      --network, batch by batch-- --probabilities restored linearly onto the input grid-- --arg-max--
      labels uint8 [X, Y, Z], voxel_counts int64 [C], volumes_ml float64 [C]

Each step is the TensorFlow transcription of `keras_cdseg.data.preprocessing` (what `cdseg predict` runs),
with the same arithmetic in the same precision and order, so both give the same labels:

- clip limits: numpy's default ("linear") percentile of the volume's voxels (float64 index `(n - 1) q`,
  difference of neighbours in float32, `a + d t` below t = 0.5 and `b - d (1 - t)` from it), falling back to
  min/max when the two coincide; volumes above 2^21 voxels take every k-th voxel (k odd), visited with x
  fastest (numpy visits them in memory order, which is the same for a RAS-stored NIfTI; other layouts give
  clip limits within a small fraction of a grey level);
- clipping in float32, then `(x - low) * (1 / (high - low))` in float32;
- or, under `DataConfig.intensity = "ranks"`: RANK_KNOTS quantiles of the same sample as above, the table of
  `rank_map` values over RANK_TABLE_SIZE intensities built with the same float64 operations, and each
  voxel's entry at `(x - first knot) * scale` in float32, truncated; under "landmarks", the table's ranks
  go through `REFERENCE_LANDMARKS` with `landmark_map`'s float64 operations first;
- centre-aligned sample positions computed in float64 from the shape and `spacing_mm` (send float64);
  linear weights in float32; positions more than half a pixel outside the grid give 0 (background);
- context slices past either end repeat the edge slice;
- restoration: the batch's probabilities linear along the second and then the first in-plane axis (float32
  weights), background outside the prepared window, then the first maximum (numpy interpolates only the
  pixels whose four neighbours disagree, with the same result: `restore_labels_from_probability_slices`).

Reorientation is the client's job and lossless (a permutation and flips, e.g. nibabel's
`as_closest_canonical` for a non-oblique image). Largest-component post-processing is not in the graph:
clients that want it run `keras_cdseg.inference.postprocessing.keep_largest_component` (model.json says
which classes); `voxel_counts` / `volumes_ml` describe the labels as returned.
"""

from keras_cdseg.data.preprocessing import RANK_KNOTS, RANK_RULE_LANDMARKS, RANK_TABLE_SIZE

VOLUME_SIGNATURE_NAME = "segment_volume"
VOLUME_INT16_SIGNATURE_NAME = "segment_volume_int16"
VOLUME_INPUT_NAME = "volume"
SPACING_INPUT_NAME = "spacing_mm"
DEFAULT_VOLUME_BATCH_SIZE = 16
_EDGE_TOLERANCE = 1e-6


def volume_signature_record(num_classes, batch_size):
    """The `model.json` entry describing the `segment_volume` signatures."""
    inputs = {VOLUME_INPUT_NAME: {"dtype": "float32", "shape": [None, None, None]},
              SPACING_INPUT_NAME: {"dtype": "float64", "shape": [3]}}  # fmt: skip
    return {
        "names": {"float32": VOLUME_SIGNATURE_NAME, "int16": VOLUME_INT16_SIGNATURE_NAME},
        "inputs": inputs,
        "outputs": {
            "labels": {"dtype": "uint8", "shape": [None, None, None]},
            "voxel_counts": {"dtype": "int64", "shape": [num_classes]},
            "volumes_ml": {"dtype": "float64", "shape": [num_classes]},
        },
        "volume_order": "canonical RAS voxel order: array axes along +x (right), +y (anterior), +z (superior); "
                        "reorient on the client (lossless permutation/flips)",
        "spacing": "voxel size in mm along the three array axes of the canonical volume",
        "batch_size": int(batch_size),
        "restoration": "class probabilities linear onto the input grid, then arg-max",
        "postprocessing": "none in the graph: apply postprocessing.largest_component_classes on the client",
    }


def add_volume_endpoints(archive, model, data_config, batch_size=DEFAULT_VOLUME_BATCH_SIZE):
    """Adds `segment_volume` (float32 volume) and `segment_volume_int16` to a `keras.export.ExportArchive`."""
    import tensorflow as tf

    from keras_cdseg.data.preprocessing import _MAX_PERCENTILE_SAMPLES

    def forward(slices):
        return tf.cast(model(slices, training=False), tf.float32)

    def endpoint(volume, spacing_mm):
        return segment_volume_graph(volume, spacing_mm, forward, data_config, model.output_shape[-1],
                                    batch_size, _MAX_PERCENTILE_SAMPLES)  # fmt: skip

    spacing = tf.TensorSpec([3], tf.float64, name=SPACING_INPUT_NAME)
    for name, dtype in ((VOLUME_SIGNATURE_NAME, tf.float32), (VOLUME_INT16_SIGNATURE_NAME, tf.int16)):
        volume = tf.TensorSpec([None, None, None], dtype, name=VOLUME_INPUT_NAME)
        archive.add_endpoint(name, endpoint, input_signature=[volume, spacing])


def segment_volume_graph(volume, spacing_mm, forward, data_config, num_classes, batch_size, max_samples):
    """Labels `[X, Y, Z]` uint8, voxel counts and volumes (mL) per class of a canonical volume (TF ops).

    Args:
        volume: tensor `[X, Y, Z]` (any real dtype; cast to float32, exact for int16) in RAS voxel order.
        spacing_mm: float64 tensor `[3]`, voxel size along the three axes.
        forward: callable `slices [N, H, W, 2T+1] float32 -> probabilities [N, H, W, C]`.
        data_config: `DataConfig` (image_size, target_spacing_mm, context, clip_percentiles).
        num_classes: int. C.
        batch_size: int. Slices per network call.
        max_samples: int. Above this many voxels the percentiles use a strided sample (as numpy's path).
    """
    import tensorflow as tf

    volume = tf.cast(volume, tf.float32)
    spacing_mm = tf.cast(spacing_mm, tf.float64)
    checks = [
        tf.debugging.assert_positive(tf.size(volume), message="volume is empty"),
        tf.debugging.assert_positive(spacing_mm, message="spacing_mm must be > 0"),
        tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(volume)), True, message="volume has NaN/Inf"),
    ]
    with tf.control_dependencies(checks):
        volume = tf.identity(volume)
    shape = tf.shape(volume)
    size = int(data_config.image_size)
    target = float(data_config.target_spacing_mm)
    prepared = prepare_canonical(volume, spacing_mm, data_config, max_samples)
    window = [_window_coords(shape[axis], spacing_mm[axis], target, size) for axis in range(2)]

    def restore(probabilities):  # [n, size, size, C] -> labels [n, X, Y]: `preprocessing.restore_labels_from_probability_slices`
        background = tf.one_hot(0, num_classes, dtype=tf.float32)
        restored = _resample_linear(tf.cast(probabilities, tf.float32), 2, window[1], size, cval=background, rank=4)
        restored = _resample_linear(restored, 1, window[0], size, cval=background, rank=4)
        return tf.cast(tf.argmax(restored, axis=-1), tf.uint8)

    labels_slices = _segment_prepared(prepared, forward, int(data_config.context), int(batch_size), size, restore)
    labels = tf.transpose(labels_slices, [1, 2, 0])
    counts = tf.math.bincount(tf.reshape(tf.cast(labels, tf.int32), [-1]), minlength=num_classes,
                              maxlength=num_classes, dtype=tf.int64)  # fmt: skip
    voxel_ml = tf.reduce_prod(spacing_mm) / 1000.0
    return {"labels": labels, "voxel_counts": counts, "volumes_ml": tf.cast(counts, tf.float64) * voxel_ml}


def prepare_canonical(volume, spacing_mm, data_config, max_samples):
    """Prepared slices `[S, image_size, image_size]` float32 of a canonical float32 volume: the graph form of
    `preprocessing.prepare_volume(...).image` for a RAS-ordered volume."""
    import tensorflow as tf

    shape = tf.shape(volume)
    size = int(data_config.image_size)
    target = float(data_config.target_spacing_mm)
    slices = tf.transpose(volume, [2, 0, 1])  # [S, n0, n1], slice-first as prepare_slices
    if data_config.intensity in RANK_RULE_LANDMARKS:
        landmarks = RANK_RULE_LANDMARKS[data_config.intensity]
        normalised = ranks_of(slices, rank_knots(volume, max_samples), landmarks)
    else:
        low, high = intensity_limits(volume, data_config.clip_percentiles, max_samples)
        low32, high32 = tf.cast(low, tf.float32), tf.cast(high, tf.float32)
        scale = tf.where(high > low, tf.cast(1.0 / tf.where(high > low, high - low, 1.0), tf.float32), 0.0)
        normalised = (tf.clip_by_value(slices, low32, high32) - low32) * scale
    coords = [_source_coords(shape[axis], spacing_mm[axis], target, size) for axis in range(2)]
    prepared = _resample_linear(normalised, 1, coords[0], shape[0])
    return _resample_linear(prepared, 2, coords[1], shape[1])


def intensity_limits(volume, clip_percentiles, max_samples):
    """float64 `(low, high)` as `preprocessing.intensity_limits` (numpy's linear percentile, min/max fallback)."""
    import tensorflow as tf

    limits = _percentiles(volume, clip_percentiles, max_samples)
    low, high = limits[0], limits[1]
    fallback = tf.logical_not(high > low)
    low = tf.where(fallback, tf.cast(tf.reduce_min(volume), tf.float64), low)
    high = tf.where(fallback, tf.cast(tf.reduce_max(volume), tf.float64), high)
    return low, high


def rank_knots(volume, max_samples):
    """float64 `[RANK_KNOTS]` as `preprocessing.rank_knots`: the volume's quantiles at ranks 0 ... 1."""
    import numpy as np

    return _percentiles(volume, np.linspace(0.0, 100.0, RANK_KNOTS), max_samples)


def ranks_of(slices, knots, landmarks=()):
    """float32 ranks of `slices` as `preprocessing.ranks_of`: the same table of `rank_map` values (through
    `landmark_map` when `landmarks` are given), the same float32 indices."""
    import tensorflow as tf

    one, zero = tf.constant(1.0, tf.float64), tf.constant(0.0, tf.float64)  # graph mode types bare floats float32
    low, span = knots[0], knots[-1] - knots[0]
    scale = tf.where(span > 0, (RANK_TABLE_SIZE - 1) / tf.where(span > 0, span, one), zero)
    steps = tf.range(RANK_TABLE_SIZE, dtype=tf.float64)
    grid = tf.where(scale > 0, low + steps / tf.where(scale > 0, scale, one), low)
    ranks = _rank_map(grid, knots)
    table = tf.cast(_landmark_map(ranks, landmarks) if landmarks else ranks, tf.float32)
    index = (slices - tf.cast(low, tf.float32)) * tf.cast(scale, tf.float32)
    index = tf.clip_by_value(index, 0.0, float(RANK_TABLE_SIZE - 1))
    return tf.gather(table, tf.cast(index, tf.int32))


def _landmark_map(ranks, landmarks):
    """`preprocessing.landmark_map` of a float64 vector, the same float64 operations in the same order."""
    import numpy as np
    import tensorflow as tf

    points = np.asarray(landmarks, dtype=np.float64)
    at, to = tf.constant(points[:, 0]), tf.constant(points[:, 1])
    segment = tf.searchsorted(at, ranks, side="right", out_type=tf.int64) - 1
    segment = tf.clip_by_value(segment, 0, len(points) - 2)
    at_low, at_high = tf.gather(at, segment), tf.gather(at, segment + 1)
    to_low, to_high = tf.gather(to, segment), tf.gather(to, segment + 1)
    return to_low + (to_high - to_low) * ((ranks - at_low) / (at_high - at_low))


def _rank_map(values, knots):
    """`preprocessing.rank_map` of a float64 vector, the same float64 operations in the same order."""
    import tensorflow as tf

    last = tf.size(knots, out_type=tf.int64) - 1
    last64 = tf.cast(last, tf.float64)
    first_not_below = tf.searchsorted(knots, values, side="left", out_type=tf.int64)
    upper = tf.clip_by_value(first_not_below, 1, last)
    low, high = tf.gather(knots, upper - 1), tf.gather(knots, upper)
    gap = high - low
    zeros, ones = tf.zeros_like(values), tf.ones_like(values)  # graph mode types bare floats float32
    fraction = tf.clip_by_value((values - low) / tf.where(gap > 0, gap, ones), zeros, ones)
    ranks = (tf.cast(upper - 1, tf.float64) + fraction) / last64
    exact = tf.gather(knots, tf.minimum(first_not_below, last)) == values
    ranks = tf.where(exact, tf.cast(first_not_below, tf.float64) / last64, ranks)
    ranks = tf.where(values < knots[0], zeros, tf.where(values > knots[-1], ones, ranks))
    return tf.where(knots[-1] == knots[0], zeros, ranks)  # a constant volume


def _percentiles(volume, percentiles, max_samples):
    """float64 `[len(percentiles)]`: numpy's linear percentiles of the strided sample `preprocessing` takes."""
    import numpy as np
    import tensorflow as tf

    flat = tf.reshape(tf.transpose(volume, [2, 1, 0]), [-1])  # x fastest: a RAS NIfTI's memory order
    num_voxels = tf.size(flat, out_type=tf.int64)
    stride = tf.bitwise.bitwise_or((num_voxels + max_samples - 1) // max_samples, 1)
    samples = tf.cond(num_voxels > max_samples, lambda: flat[::stride], lambda: flat)
    ordered = tf.sort(samples)
    n = tf.size(ordered, out_type=tf.int64)
    virtual = tf.cast(n - 1, tf.float64) * tf.constant(np.asarray(percentiles, dtype=np.float64) / 100.0)
    previous = tf.floor(virtual)
    gamma = virtual - previous
    below = tf.cast(previous, tf.int64)
    above = tf.minimum(below + 1, n - 1)
    a, b = tf.gather(ordered, below), tf.gather(ordered, above)
    difference = tf.cast(b - a, tf.float64)  # float32 difference, as numpy's _lerp on float32 samples
    a64, b64 = tf.cast(a, tf.float64), tf.cast(b, tf.float64)
    return tf.where(gamma >= 0.5, b64 - difference * (1.0 - gamma), a64 + difference * gamma)


def _resampled_size(n, spacing, target):
    import tensorflow as tf

    # Python's round() and tf.round both round half to even.
    return tf.maximum(tf.cast(tf.round(tf.cast(n, tf.float64) * spacing / target), tf.int64), 1)


def _offsets(n, spacing, target, size):
    """(centre, resampled centre, pad offset) of one in-plane axis, as `VolumeGeometry`."""
    import tensorflow as tf

    resampled = _resampled_size(n, spacing, target)
    centre = (tf.cast(n, tf.float64) - 1.0) / 2.0
    resampled_centre = (tf.cast(resampled, tf.float64) - 1.0) / 2.0
    pad = tf.cast(tf.math.floordiv(size - resampled, 2), tf.float64)
    return centre, resampled_centre, pad


def _source_coords(n, spacing, target, size):
    """`VolumeGeometry.source_coords`: input position sampled by each prepared pixel (float64 [size])."""
    import tensorflow as tf

    centre, resampled_centre, pad = _offsets(n, spacing, target, size)
    window = tf.range(size, dtype=tf.float64)
    return centre + (window - pad - resampled_centre) * (target / spacing)


def _window_coords(n, spacing, target, size):
    """`VolumeGeometry.window_coords`: prepared position of each input pixel (float64 [n])."""
    import tensorflow as tf

    centre, resampled_centre, pad = _offsets(n, spacing, target, size)
    canonical = tf.range(tf.cast(n, tf.float64), dtype=tf.float64)
    return pad + resampled_centre + (canonical - centre) * (spacing / target)


def _inside_and_clamped(coords, size):
    import tensorflow as tf

    limit = tf.cast(size, tf.float64)
    inside = (coords >= -0.5 - _EDGE_TOLERANCE) & (coords <= limit - 0.5 + _EDGE_TOLERANCE)
    return inside, tf.clip_by_value(coords, 0.0, limit - 1.0)


def _broadcast_mask(mask, axis, rank):
    import tensorflow as tf

    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(mask, shape)


def _resample_linear(array, axis, coords, size, cval=None, rank=3):
    """`preprocessing._resample_axis(order=1)` along `axis` of a float32 `[S, a, b]` (rank 3) or `[S, a, b, C]`
    (rank 4) array; positions outside give 0, or `cval` (one value per trailing channel)."""
    import tensorflow as tf

    size = tf.cast(size, tf.int64)
    inside, clamped = _inside_and_clamped(coords, size)
    low = tf.minimum(tf.cast(tf.floor(clamped), tf.int64), tf.maximum(size - 2, 0))
    high = tf.minimum(low + 1, size - 1)
    weight = _broadcast_mask(tf.cast(clamped - tf.cast(low, tf.float64), tf.float32), axis, rank)
    out = tf.gather(array, low, axis=axis) * (1.0 - weight) + tf.gather(array, high, axis=axis) * weight
    outside = tf.zeros_like(out) if cval is None else tf.broadcast_to(cval, tf.shape(out))
    return tf.where(_broadcast_mask(inside, axis, rank), out, outside)


def _segment_prepared(prepared, forward, context, batch_size, size, restore):
    """Labels `[S, X, Y]` uint8: 2T+1 context stacks of `batch_size` slices per network call, each batch's
    probabilities turned into labels on the input grid by `restore` before the next batch runs."""
    import tensorflow as tf

    num_slices = tf.shape(prepared, out_type=tf.int64)[0]
    num_batches = (num_slices + batch_size - 1) // batch_size
    offsets = tf.range(-context, context + 1, dtype=tf.int64)
    batches = tf.TensorArray(tf.uint8, size=tf.cast(num_batches, tf.int32), infer_shape=False,
                             element_shape=tf.TensorShape([None, None, None]))  # fmt: skip

    def body(index, batches):
        start = index * batch_size
        indices = tf.range(start, tf.minimum(start + batch_size, num_slices))
        neighbours = tf.clip_by_value(indices[:, None] + offsets[None, :], 0, num_slices - 1)
        stacks = tf.transpose(tf.gather(prepared, neighbours), [0, 2, 3, 1])  # [n, H, W, 2T+1]
        stacks = tf.ensure_shape(stacks, [None, size, size, 2 * context + 1])
        return index + 1, batches.write(tf.cast(index, tf.int32), restore(forward(stacks)))

    _, batches = tf.while_loop(lambda index, _: index < num_batches, body,
                               (tf.constant(0, tf.int64), batches), parallel_iterations=1)  # fmt: skip
    return batches.concat()
