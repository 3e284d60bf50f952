"""tf.data input pipelines over a `VolumeCache`: infinite shuffled training batches and ordered evaluation batches.

Training batches are drawn, not iterated: step `n` seeds a numpy generator with `(seed, n)`, which picks
`batch_size` (case, slice) pairs over all cases and modalities (with replacement, by per-slice weight) and the
augmentation parameters. So a seed fixes every batch, however many map workers run, and nothing but the
current batch's slices is read from the memory-mapped cache: datasets larger than memory stream.

    step --numpy: sample + read 2T+1 slices (mmap)-- --TF: augmentation (data/augmentation.py)-- --one-hot-- batch
"""

import numpy as np
import tensorflow as tf

from keras_cdseg.data.augmentation import IDENTITY_PARAMS, NUM_PARAMS, Augmentation, augment_batch
from keras_cdseg.data.cache import preparation_settings
from keras_cdseg.errors import InputError


def split_cases(cases, val_fraction, seed):
    """Splits cases (never slices) into training and validation, stratified by modality.

    Args:
        cases: sequence of `Case` or `CacheEntry` (anything with `.modality`; plain ids count as one group).
        val_fraction: float in [0, 1). Fraction of each modality's cases held out (rounded).
        seed: int.

    Returns:
        (train, val) tuples in input order. Each modality with >= 2 cases gives at least one validation
        case when `val_fraction > 0` and keeps at least one training case; a modality with one case trains.
    """
    if not 0 <= val_fraction < 1:
        raise InputError("val_fraction", f"must be in [0, 1). Received: {val_fraction}")
    groups = {}
    for position, case in enumerate(cases):
        groups.setdefault(str(getattr(case, "modality", None)), []).append(position)
    rng = np.random.default_rng(seed)
    held_out = set()
    for modality in sorted(groups):
        positions = groups[modality]
        num_val = int(len(positions) * val_fraction + 0.5)  # half up, not banker's rounding
        if val_fraction > 0 and len(positions) >= 2:
            num_val = min(max(num_val, 1), len(positions) - 1)
        held_out.update(rng.permutation(positions)[:num_val].tolist())
    train = tuple(case for i, case in enumerate(cases) if i not in held_out)
    val = tuple(case for i, case in enumerate(cases) if i in held_out)
    return train, val


def make_training_dataset(
    cache,
    cases,
    config=None,
    batch_size=6,
    seed=0,
    augment=True,
    num_classes=None,
    foreground_weight=1.0,
    balance_modalities=False,
    start_step=0,
    modality_names=None,
    sampling="slices",
):
    """Infinite batches `(x [B, H, W, 2T+1] float32, y [B, H, W, C] float32 one-hot)` for training.

    Args:
        cache: `VolumeCache`.
        cases: sequence of case ids, `Case`s or `CacheEntry`s; all must be cached with labels.
        config: `DataConfig` or None (the cache's). Its preparation fields must match the cache's; its
            `context` (T) sets the number of channels.
        batch_size: int. Defaults to 6 (the paper's).
        seed: int. Same seed, same batches. Defaults to 0.
        augment: bool or `Augmentation` (`keras_cdseg.data.augmentation`). True uses `Augmentation()`.
            Defaults to True.
        num_classes: int or None (the cache's `max(labels) + 1`).
        foreground_weight: float. Sampling weight of slices with foreground relative to slices without:
            1 samples every slice equally, 4 shows foreground slices 4× as often. Defaults to 1.
        balance_modalities: bool. Give every modality the same total sampling weight (otherwise every
            slice counts alike, so the modality with more slices dominates). Defaults to False.
        start_step: int. Index of the first batch. A run resumed at step n passes n and continues the
            exact batch sequence of an uninterrupted run. Defaults to 0.
        sampling: str. "slices": slices drawn by `foreground_weight` (and `balance_modalities`); "organs":
            every case gets the same share of draws, and within a case 1/3 go to any slice and 2/3 to the
            slices holding each foreground class in equal parts, so a small organ is drawn as often as a
            large one. Uses no modality. Defaults to "slices".
        modality_names: sequence of str or None. Only for models allowed to see the modality during
            training (the Cond-DCN baseline): batches become `(x, {"segmentation": y, "modality": m})` with
            `m` the one-hot index of each slice's case modality in this list. None (the default) keeps the
            modality out of the data entirely.
    """
    config, case_ids, num_classes = _check_inputs(cache, cases, config, num_classes, need_labels=True)
    augmentation = Augmentation() if augment is True else (augment or None)
    if sampling == "organs":
        slots_case, slots_slice, weights = _organ_sampling_table(cache, case_ids, num_classes)
    elif sampling == "slices":
        slots_case, slots_slice, weights = _sampling_table(cache, case_ids, foreground_weight, balance_modalities)
    else:
        raise InputError("sampling", f"must be 'slices' or 'organs'. Received: {sampling!r}")
    cumulative = np.cumsum(weights)
    reader = _SliceReader(cache, case_ids, config.context)

    def sample(step):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step)])
        slots = np.searchsorted(cumulative, rng.random(batch_size) * cumulative[-1], side="right")
        return rng, np.minimum(slots, len(weights) - 1)

    def load(step):
        rng, slots = sample(step)
        image, label = reader.read(slots_case[slots], slots_slice[slots])
        if augmentation:
            params = augmentation.sample(rng, batch_size)
        else:
            params = np.tile(IDENTITY_PARAMS, (batch_size, 1))
        return image, label, params.astype(np.float32)

    case_modality = _modality_indices(cache, case_ids, modality_names)

    def load_modality(step):
        return case_modality[slots_case[sample(step)[1]]]

    def load_all(step):
        batch = _numpy_batch(load, [step], batch_size, config, with_params=True)
        if case_modality is None:
            return batch
        modality = tf.numpy_function(load_modality, [step], tf.int32, stateful=False)
        return (*batch, tf.ensure_shape(modality, [batch_size]))

    dataset = tf.data.Dataset.counter(start=int(start_step)).map(
        load_all, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if augmentation:
        with_noise = augmentation.noise_probability > 0
        seed32 = int(seed) & 0x7FFFFFFF

        def augment(step, batch):
            x, y, params, *modality = batch
            noise_seed = tf.stack([tf.constant(seed32, tf.int64), step]) if with_noise else None
            return (*augment_batch(x, y, params, noise_seed), *modality)

        steps = tf.data.Dataset.counter(start=int(start_step))
        dataset = tf.data.Dataset.zip(steps, dataset).map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        dataset = dataset.map(lambda x, y, params, *modality: (x, y, *modality))

    def targets(x, y, *rest):
        y = tf.one_hot(tf.cast(y, tf.int32), num_classes, dtype=tf.float32)
        if case_modality is None:
            return x, y
        modality = tf.one_hot(rest[-1], len(modality_names), dtype=tf.float32)
        return x, {"segmentation": y, "modality": modality}

    return dataset.map(targets).prefetch(tf.data.AUTOTUNE)


def _modality_indices(cache, case_ids, modality_names):
    if modality_names is None:
        return None
    names = list(modality_names)
    indices = []
    for case_id in case_ids:
        modality = cache.entry(case_id).modality
        if modality not in names:
            raise InputError(case_id, f"modality {modality!r} is not one of the model's modalities {names}")
        indices.append(names.index(modality))
    return np.asarray(indices, dtype=np.int32)


def make_eval_dataset(cache, cases, config=None, batch_size=6, num_classes=None, with_labels=True):
    """Finite, ordered batches of every slice of `cases` (case order as given, slices ascending).

    Yields `(x, y_onehot)` when `with_labels` (every case needs a label map), else `x` alone. The last batch
    may be smaller. `eval_slice_order(cache, cases)` lists the (case_id, slice) of each row.
    """
    config, case_ids, num_classes = _check_inputs(cache, cases, config, num_classes, need_labels=with_labels)
    order = eval_slice_order(cache, case_ids)
    index_of = {case_id: i for i, case_id in enumerate(case_ids)}
    slots = np.array([[index_of[c], s] for c, s in order], dtype=np.int64).reshape(-1, 2)
    reader = _SliceReader(cache, case_ids, config.context)

    def load(case_indices, slice_indices):
        image, label = reader.read(case_indices, slice_indices, with_labels=with_labels)
        return image, label, np.zeros((len(case_indices), NUM_PARAMS), np.float32)

    dataset = tf.data.Dataset.from_tensor_slices((slots[:, 0], slots[:, 1])).batch(batch_size)
    dataset = dataset.map(
        lambda c, s: _numpy_batch(load, [c, s], None, config, with_params=False),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if with_labels:
        dataset = dataset.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), num_classes, dtype=tf.float32)))
    else:
        dataset = dataset.map(lambda x, y: x)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_slice_order(cache, cases):
    """(case_id, slice index) of each row `make_eval_dataset` yields, in order."""
    return [(case_id, s) for case_id in _case_ids(cases) for s in range(cache.entry(case_id).num_slices)]


def _case_ids(cases):
    return tuple(c if isinstance(c, str) else c.case_id for c in cases)


def _check_inputs(cache, cases, config, num_classes, need_labels):
    config = config or cache.config
    cached, wanted = preparation_settings(cache.config), preparation_settings(config)
    if cached != wanted:
        raise InputError(cache.cache_dir, f"cache was prepared with {cached}, not {wanted}; rebuild it")
    case_ids = _case_ids(cases)
    if not case_ids:
        raise InputError(cache.cache_dir, "no cases selected")
    for case_id in case_ids:
        if need_labels and cache.entry(case_id).label_file is None:
            raise InputError(cache.cache_dir, f"case '{case_id}' has no label map")
    num_classes = num_classes or cache.num_classes
    if max(cache.labels.values()) >= num_classes:
        raise InputError(cache.cache_dir, f"labels {cache.labels} do not fit num_classes={num_classes}")
    return config, case_ids, num_classes


def _sampling_table(cache, case_ids, foreground_weight, balance_modalities):
    if not foreground_weight > 0:
        raise InputError("foreground_weight", f"must be > 0. Received: {foreground_weight}")
    slots_case, slots_slice, weights, modalities = [], [], [], []
    for i, case_id in enumerate(case_ids):
        entry = cache.entry(case_id)
        has_foreground = np.asarray(entry.foreground_pixels) > 0
        slots_case.append(np.full(entry.num_slices, i))
        slots_slice.append(np.arange(entry.num_slices))
        weights.append(np.where(has_foreground, float(foreground_weight), 1.0))
        modalities.append(np.full(entry.num_slices, str(entry.modality)))
    weights, modalities = np.concatenate(weights), np.concatenate(modalities)
    if balance_modalities:
        for modality in np.unique(modalities):
            weights[modalities == modality] /= weights[modalities == modality].sum()
    return np.concatenate(slots_case), np.concatenate(slots_slice), weights


def _organ_sampling_table(cache, case_ids, num_classes):
    slots_case, slots_slice, weights = [], [], []
    for i, case_id in enumerate(case_ids):
        label = cache.label(case_id)
        num_slices = label.shape[0]
        present = np.stack([(label == c).any(axis=(1, 2)) for c in range(1, num_classes)], axis=1)  # [S, C-1]
        organs = [present[:, c] / present[:, c].sum() for c in range(present.shape[1]) if present[:, c].any()]
        uniform = np.full(num_slices, 1.0 / num_slices)
        case_weights = uniform / 3 + (2 / 3) * np.mean(organs, axis=0) if organs else uniform
        slots_case.append(np.full(num_slices, i))
        slots_slice.append(np.arange(num_slices))
        weights.append(case_weights / len(case_ids))
    return np.concatenate(slots_case), np.concatenate(slots_slice), np.concatenate(weights)


class _SliceReader:
    """Copies 2T+1-slice stacks (edges replicated) and label slices out of the memory-mapped cache."""

    def __init__(self, cache, case_ids, context):
        self.cache, self.case_ids, self.context = cache, case_ids, context
        self.offsets = np.arange(-context, context + 1)
        size = cache.config.image_size
        self.slice_shape = (size, size)

    def read(self, case_indices, slice_indices, with_labels=True):
        num = len(case_indices)
        image = np.empty((num, len(self.offsets), *self.slice_shape), np.float32)
        label = np.zeros((num, *self.slice_shape), np.uint8)
        for row, (c, s) in enumerate(zip(case_indices, slice_indices)):
            volume = self.cache.image(self.case_ids[c])
            neighbours = np.clip(s + self.offsets, 0, volume.shape[0] - 1)
            # Neighbours are contiguous in the file: one slab read, then replicated edges by index.
            first, last = neighbours[0], neighbours[-1]
            slab = volume[first : last + 1]
            image[row] = slab if len(slab) == len(neighbours) else slab[neighbours - first]
            if with_labels:
                label[row] = self.cache.label(self.case_ids[c])[s]
        return image, label


def _numpy_batch(load, inputs, batch_size, config, with_params):
    image, label, params = tf.numpy_function(load, inputs, [tf.float32, tf.uint8, tf.float32], stateful=False)
    size = config.image_size
    # Channels last for the model; the cache stores slice-first so each slab read is one contiguous copy.
    image = tf.ensure_shape(tf.transpose(image, [0, 2, 3, 1]), [batch_size, size, size, config.num_channels])
    label = tf.ensure_shape(label, [batch_size, size, size])
    params = tf.ensure_shape(params, [batch_size, NUM_PARAMS])
    return (image, label, params) if with_params else (image, label)
