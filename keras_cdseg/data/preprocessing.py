"""Turning any loaded volume into model input, and putting predictions back on the input's grid.

`prepare_volume` is the one code path used by training, evaluation, prediction and serving clients:

    volume --reorient to RAS-- --clip to percentiles, map to [0, 1]-- --resample in-plane-- --pad/crop-- slices

The intensity rule is the same for CT and MR (there is no modality argument): per-volume percentiles are
clipped and mapped linearly to [0, 1], so Hounsfield units and arbitrary MR scales end up alike; or, with
`DataConfig.intensity = "ranks"`, each voxel becomes its rank in the volume's own intensity distribution
(`rank_knots`), which no increasing change of scale (a display window, HU against a scanner's units) alters;
or, with "landmarks", those ranks mapped through one fixed reference curve (`REFERENCE_LANDMARKS`), so the
tissues keep the spread the percentile rule gives them while the invariance of ranks stays. Slices run
along the RAS superior axis (array axis 2); the prepared array is slice-first, `[num_slices, H, W]`, with H
along RAS axis 0 (+x, towards the patient's right) and W along RAS axis 1 (+y, anterior).

The in-plane map is centre-aligned: the resampled grid of `round(n * spacing / target)` pixels at exactly the
target spacing shares its centre with the input grid, then an integer centre pad/crop fits it into
`image_size`. With spacing equal to the target and a size that fits, every step is an exact copy, so a label
map survives `prepare_volume` + `restore_labels` bit for bit. Pure numpy/nibabel, no TensorFlow.

Streaming (`keras_cdseg.inference.predict_volume`) uses the same steps slab by slab: `volume_geometry` (clip
limits from a strided sample of the whole volume), `prepare_slices`, then `restore_label_slices` /
`restore_probability_slices` written through `canonical_slices(output, geometry)`, a view of an output
volume in the input's axis order. Every step works slice by slice, so slabs give the whole-volume values
bit for bit; the whole-volume functions are these slab functions applied to all slices.
"""

import dataclasses
import functools

import numpy as np
from nibabel import orientations as nio

from keras_cdseg.data.nifti_io import check_same_grid

_MAX_PERCENTILE_SAMPLES = 2**21
# Knots of the "ranks" rule: ranks 1/1024 apart, linear in between (a 2.5 mm slice has no finer contrast).
RANK_KNOTS = 1025
# Entries of the table `ranks_of` looks voxels up in.
RANK_TABLE_SIZE = 65536
# The "landmarks" rule's reference curve, (rank, value) pairs with linear interpolation in between: the
# percentile rule's value at each rank, averaged over volumes (the mean of the CT mean and the MR mean over
# the 34 scans of ../shared/data/abdomen_ct_mr, rounded to 0.01). Plain ranks put every organ into the top
# tenth of [0, 1] (most voxels are air, fat or background); this curve spreads them as percentiles do.
# Nyul & Udupa's histogram standardisation, with one reference for every modality. Models trained with the
# rule depend on these exact values (model.json records only the rule's name), so a different curve needs a
# new rule name, not an edit here.
REFERENCE_LANDMARKS = (
    (0.0, 0.0), (0.3, 0.01), (0.4, 0.03), (0.5, 0.06), (0.6, 0.14), (0.7, 0.22), (0.8, 0.33), (0.85, 0.39),
    (0.9, 0.47), (0.925, 0.53), (0.95, 0.65), (0.975, 0.86), (0.99, 0.97), (1.0, 1.0),
)
# The `DataConfig.intensity` rules built on ranks, with the curve each maps ranks through (none for "ranks").
RANK_RULE_LANDMARKS = {"ranks": (), "landmarks": REFERENCE_LANDMARKS}


@dataclasses.dataclass(frozen=True)
class VolumeGeometry:
    """Everything needed to map a prepared `[num_slices, H, W]` array back onto the original voxel grid.

    Args:
        original_shape: (int, int, int). Shape of the input volume in its file's axis order.
        original_affine: 4×4 nested tuples. The input's voxel → world matrix.
        orientation: ((int, int),) * 3. nibabel orientation from the input axes to RAS (axis, flip).
        canonical_spacing_mm: (float, float, float). Voxel size along the RAS-ordered array axes.
        target_spacing_mm: float. In-plane pixel size of the prepared slices.
        image_size: int. In-plane size of the prepared slices.
        intensity_range: (float, float). The clip limits (input units) mapped to 0 and 1 (informative only
            under "ranks" and "landmarks").
        rank_knots: tuple of floats. Under `DataConfig.intensity = "ranks"` or "landmarks", the volume's
            intensity quantiles at ranks 0, 1/(K-1), ..., 1 (`rank_knots`); empty for "percentiles".
        rank_landmarks: tuple of (rank, value) pairs. Under "landmarks", the curve ranks are mapped through
            (`REFERENCE_LANDMARKS`); empty otherwise.
    """

    original_shape: tuple
    original_affine: tuple
    orientation: tuple
    canonical_spacing_mm: tuple
    target_spacing_mm: float
    image_size: int
    intensity_range: tuple = (0.0, 1.0)
    rank_knots: tuple = ()
    rank_landmarks: tuple = ()

    @property
    def canonical_shape(self):
        """Shape after reorientation to RAS (no resampling)."""
        shape = [0, 0, 0]
        for in_axis, (out_axis, _) in enumerate(self.orientation):
            shape[int(out_axis)] = self.original_shape[in_axis]
        return tuple(shape)

    @property
    def num_slices(self):
        return self.canonical_shape[2]

    @property
    def resampled_shape(self):
        """In-plane size at the target spacing, before the centre pad/crop."""
        return tuple(
            max(1, int(round(n * s / self.target_spacing_mm)))
            for n, s in zip(self.canonical_shape[:2], self.canonical_spacing_mm[:2])
        )

    @property
    def pad_offsets(self):
        """Index in the prepared slice of resampled pixel 0 (negative where the resampled grid is cropped)."""
        return tuple((self.image_size - n) // 2 for n in self.resampled_shape)

    @property
    def prepared_spacing_mm(self):
        """Pixel size of the prepared array as (H, W, slice)."""
        return (self.target_spacing_mm, self.target_spacing_mm, float(self.canonical_spacing_mm[2]))

    @property
    def canonical_affine(self):
        affine = np.asarray(self.original_affine, dtype=np.float64)
        return affine @ nio.inv_ornt_aff(np.asarray(self.orientation), self.original_shape)

    @property
    def prepared_affine(self):
        """Voxel → world matrix of the prepared volume viewed as (H, W, slice), i.e. `prepared.transpose(1, 2, 0)`."""
        to_canonical = np.eye(4)
        for axis in range(2):
            scale = self.target_spacing_mm / self.canonical_spacing_mm[axis]
            to_canonical[axis, axis] = scale
            to_canonical[axis, 3] = self._centre(axis) - (self.pad_offsets[axis] + self._resampled_centre(axis)) * scale
        return self.canonical_affine @ to_canonical

    def source_coords(self, axis):
        """Canonical-grid position sampled by each prepared pixel along in-plane `axis` (0 or 1)."""
        scale = self.target_spacing_mm / self.canonical_spacing_mm[axis]
        window = np.arange(self.image_size, dtype=np.float64)
        return self._centre(axis) + (window - self.pad_offsets[axis] - self._resampled_centre(axis)) * scale

    def window_coords(self, axis):
        """Prepared-slice position of each canonical pixel along in-plane `axis`: the inverse of `source_coords`."""
        scale = self.canonical_spacing_mm[axis] / self.target_spacing_mm
        canonical = np.arange(self.canonical_shape[axis], dtype=np.float64)
        return self.pad_offsets[axis] + self._resampled_centre(axis) + (canonical - self._centre(axis)) * scale

    def _centre(self, axis):
        return (self.canonical_shape[axis] - 1) / 2

    def _resampled_centre(self, axis):
        return (self.resampled_shape[axis] - 1) / 2

    def to_dict(self):
        return {
            "original_shape": [int(n) for n in self.original_shape],
            "original_affine": [[float(v) for v in row] for row in self.original_affine],
            "orientation": [[int(a), int(f)] for a, f in self.orientation],
            "canonical_spacing_mm": [float(s) for s in self.canonical_spacing_mm],
            "target_spacing_mm": float(self.target_spacing_mm),
            "image_size": int(self.image_size),
            "intensity_range": [float(v) for v in self.intensity_range],
            **({"rank_knots": [float(v) for v in self.rank_knots]} if self.rank_knots else {}),
            **({"rank_landmarks": [[float(r), float(v)] for r, v in self.rank_landmarks]} if self.rank_landmarks else {}),
        }

    @classmethod
    def from_dict(cls, values):
        return cls(
            original_shape=tuple(int(n) for n in values["original_shape"]),
            original_affine=tuple(tuple(float(v) for v in row) for row in values["original_affine"]),
            orientation=tuple((int(a), int(f)) for a, f in values["orientation"]),
            canonical_spacing_mm=tuple(float(s) for s in values["canonical_spacing_mm"]),
            target_spacing_mm=float(values["target_spacing_mm"]),
            image_size=int(values["image_size"]),
            intensity_range=tuple(float(v) for v in values.get("intensity_range", (0.0, 1.0))),
            rank_knots=tuple(float(v) for v in values.get("rank_knots", ())),
            rank_landmarks=tuple((float(r), float(v)) for r, v in values.get("rank_landmarks", ())),
        )


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedVolume:
    """Model-ready slices of one volume.

    Args:
        image: float32 `[num_slices, H, W]`, mostly in [0, 1] (0 outside the scanned field of view).
        label: uint8 `[num_slices, H, W]` or None.
        geometry: `VolumeGeometry` to undo the spatial steps.
    """

    image: np.ndarray
    label: np.ndarray | None
    geometry: VolumeGeometry


def prepare_volume(image, config, label=None):
    """Reorients, rescales intensities, resamples and pads/crops a volume into slice-first model input.

    The whole-volume form of `volume_geometry` + `prepare_slices` (which stream a volume slab by slab with
    bit-identical results).

    Args:
        image: `Volume` (keras_cdseg.data.nifti_io). Any orientation and spacing; any numeric dtype.
        config: `DataConfig`. Uses `image_size`, `target_spacing_mm`, `clip_percentiles`.
        label: `Volume` or None. Must be on the image's grid (`InputError` otherwise).

    Returns:
        `PreparedVolume`. Intensities: the `clip_percentiles` of the whole volume map to 0 and 1 (linear in
        between, clipped outside); a volume whose two percentiles coincide (e.g. > 99.5 % background) falls
        back to its min/max, and a constant volume becomes all zeros. Under `config.intensity = "ranks"`,
        each voxel's rank in the volume instead (`rank_map`); under "landmarks", that rank mapped through
        `REFERENCE_LANDMARKS` (`landmark_map`). Pixels outside the scanned field of
        view are 0 in the image and background (0) in the label.
    """
    if label is not None:
        check_same_grid(image, label)
    geometry = volume_geometry(image, config)
    prepared_image = prepare_slices(image.data, geometry, 0, geometry.num_slices)
    prepared_label = None
    if label is not None:
        label_slices = canonical_slices(np.asarray(label.data, dtype=np.uint8), geometry)
        prepared_label = _resample_in_plane(label_slices, geometry, order=0)
    return PreparedVolume(image=prepared_image, label=prepared_label, geometry=geometry)


def volume_geometry(image, config):
    """The `VolumeGeometry` `prepare_volume` uses for `image`, including its clip limits; copies no voxels.

    Args:
        image: `Volume`. Any orientation and spacing; any numeric dtype.
        config: `DataConfig`.

    Returns:
        `VolumeGeometry` whose `intensity_range` is `intensity_limits(image.data, config.clip_percentiles)`
        (computed once, from a strided sample, for the whole volume: slabs prepared with it are normalised
        exactly as the whole volume is).
    """
    data = np.asarray(image.data)
    affine = np.asarray(image.affine, dtype=np.float64)
    orientation = nio.io_orientation(affine).astype(int)
    canonical_affine = affine @ nio.inv_ornt_aff(orientation, data.shape)
    return VolumeGeometry(
        original_shape=tuple(int(n) for n in data.shape),
        original_affine=tuple(tuple(float(v) for v in row) for row in affine),
        orientation=tuple((int(a), int(f)) for a, f in orientation),
        canonical_spacing_mm=tuple(float(s) for s in np.sqrt((canonical_affine[:3, :3] ** 2).sum(axis=0))),
        target_spacing_mm=float(config.target_spacing_mm),
        image_size=int(config.image_size),
        intensity_range=intensity_limits(data, config.clip_percentiles),
        rank_knots=rank_knots(data) if config.intensity in RANK_RULE_LANDMARKS else (),
        rank_landmarks=RANK_RULE_LANDMARKS.get(config.intensity, ()),
    )


def canonical_slices(array, geometry):
    """View of an array on the original grid as RAS slices, `[num_slices, n0, n1, ...]` (no copy).

    Trailing axes (e.g. classes) are kept. The view is writable when `array` is, so restored slabs can be
    written straight into an output volume in the input's own axis order.
    """
    return np.moveaxis(nio.apply_orientation(array, np.asarray(geometry.orientation)), 2, 0)


def prepare_slices(data, geometry, start, stop):
    """Prepared image slices `start:stop` (RAS superior order), float32 `[stop - start, H, W]`.

    Args:
        data: the image array as loaded (original axis order), e.g. `Volume.data`. Not modified.
        geometry: `VolumeGeometry` from `volume_geometry` (its `intensity_range` sets the clip limits).
        start, stop: int. Slice range, `0 <= start <= stop <= geometry.num_slices`.

    Every step works slice by slice, so any split into slabs gives the same values, bit for bit, as
    `prepare_volume`. Memory: two float32 slabs at the input's in-plane size, one at the prepared size.
    """
    if not 0 <= start <= stop <= geometry.num_slices:
        raise ValueError(f"slice range {start}:{stop} outside 0:{geometry.num_slices}")
    source = canonical_slices(np.asarray(data), geometry)[start:stop]
    if geometry.rank_knots:
        return _resample_in_plane(ranks_of(source, geometry.rank_knots, geometry.rank_landmarks), geometry, order=1)
    low, high = geometry.intensity_range
    # Slice-first C-contiguous float32 copy; clipping here (before resampling) keeps interpolation from
    # spreading outliers, and the transposing copy is paid once on the full-resolution slab.
    slices = np.empty(source.shape, dtype=np.float32)
    np.clip(source, low, high, out=slices, casting="unsafe")
    slices -= np.float32(low)
    slices *= np.float32(1.0 / (high - low)) if high > low else np.float32(0.0)
    return _resample_in_plane(slices, geometry, order=1)


def intensity_limits(data, clip_percentiles, max_samples=_MAX_PERCENTILE_SAMPLES):
    """The (low, high) intensities `prepare_volume` maps to 0 and 1 (see its docstring for edge cases).

    Volumes above `max_samples` voxels use every k-th voxel in memory order (k odd, so the samples do not
    lock onto even row lengths): percentiles of 2 M voxels are within a small fraction of a grey level
    of the full set, and a 512×512×100 CT no longer spends most of its preparation time sorting.
    """
    data = np.asarray(data)
    low, high = (float(v) for v in np.percentile(_intensity_samples(data, max_samples), clip_percentiles))
    if not high > low:
        low, high = float(data.min()), float(data.max())
    return low, high


def rank_knots(data, num_knots=RANK_KNOTS, max_samples=_MAX_PERCENTILE_SAMPLES):
    """The knots of the "ranks" intensity rule: the volume's quantiles at ranks 0, 1/(K-1), ..., 1.

    From the same strided sample as `intensity_limits` (numpy's linear percentiles); K = `num_knots`.
    Returns a tuple of K non-decreasing floats; a value repeated over many voxels (a display window's
    edges, an MR background of zeros) repeats over as many knots.
    """
    return tuple(float(v) for v in np.percentile(_intensity_samples(np.asarray(data), max_samples),
                                                 np.linspace(0.0, 100.0, num_knots)))  # fmt: skip


def rank_map(values, knots):
    """float64 ranks in [0, 1] of `values` (any shape) in the distribution whose quantiles are `knots`.

    The fraction of the distribution strictly below each value, linear between knots: a value equal to a
    repeated knot (a spike of equal voxels) gets the rank where the spike starts, a value just above it the
    rank where it ends. So a CT clipped to a window and the same CT in full-range HU give the tissues inside
    the window the same ranks, and everything below the window rank 0 in the first, at most the window's
    own start in the second. Below the first knot 0, above the last 1. The graph form
    (`deploy.volume_signature`) repeats these float64 operations, so both agree bit for bit.
    """
    knots = np.asarray(knots, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    last = len(knots) - 1
    if last < 1 or knots[-1] == knots[0]:
        return np.zeros(values.shape)  # a constant volume, as the percentile rule makes it
    first_not_below = np.searchsorted(knots, values, side="left")
    upper = np.clip(first_not_below, 1, last)
    low, high = knots[upper - 1], knots[upper]
    gap = high - low
    fraction = np.clip((values - low) / np.where(gap > 0, gap, 1.0), 0.0, 1.0)
    ranks = (upper - 1 + fraction) / last
    exact = knots[np.minimum(first_not_below, last)] == values
    ranks = np.where(exact, first_not_below / last, ranks)
    return np.where(values < knots[0], 0.0, np.where(values > knots[-1], 1.0, ranks))


def landmark_map(ranks, landmarks):
    """float64 `ranks` (any shape, in [0, 1]) mapped through the piecewise-linear curve of (rank, value)
    `landmarks`, whose ranks increase from 0 to 1. The graph form repeats these float64 operations."""
    points = np.asarray(landmarks, dtype=np.float64)
    at, to = points[:, 0], points[:, 1]
    ranks = np.asarray(ranks, dtype=np.float64)
    segment = np.clip(np.searchsorted(at, ranks, side="right") - 1, 0, len(at) - 2)
    fraction = (ranks - at[segment]) / (at[segment + 1] - at[segment])
    return to[segment] + (to[segment + 1] - to[segment]) * fraction


def ranks_of(values, knots, landmarks=()):
    """float32 `rank_map` of `values` through a table of RANK_TABLE_SIZE entries (how `prepare_slices` applies it).

    `rank_map` does a binary search per voxel: seconds for a 512 x 512 x 100 CT. The table holds it at
    RANK_TABLE_SIZE evenly spaced intensities from the first knot to the last, and each voxel takes the
    entry at or below it (float32 arithmetic), so a rank is at most one table step (1/65535 of the volume's
    range, 0.06 HU for a CT from -1024 to 3071) below `rank_map`'s: a rank difference of about 1e-4 at most.
    The graph form (`deploy.volume_signature`) builds the same table and indices, bit for bit. With
    `landmarks`, the table holds `landmark_map` of the ranks instead.
    """
    low, scale, table = rank_table(tuple(knots), tuple(tuple(point) for point in landmarks))
    index = np.asarray(values, dtype=np.float32) - np.float32(low)  # a new array: `values` is not modified
    index *= np.float32(scale)
    np.clip(index, 0, len(table) - 1, out=index)
    return table[index.astype(np.int32)]  # truncation: the entry at or below


@functools.lru_cache(maxsize=4)
def rank_table(knots, landmarks=()):
    """`(low, scale, float32 table)`: entry i is `rank_map(low + i / scale)` (through `landmark_map` when
    `landmarks` are given), `low` the first knot and the last entry at the last knot; a constant volume gets
    a table of zeros."""
    knots_array = np.asarray(knots, dtype=np.float64)
    low, span = float(knots_array[0]), float(knots_array[-1] - knots_array[0])
    scale = (RANK_TABLE_SIZE - 1) / span if span > 0 else 0.0
    steps = np.arange(RANK_TABLE_SIZE, dtype=np.float64)
    grid = low + steps / scale if scale > 0 else np.full(RANK_TABLE_SIZE, low)
    ranks = rank_map(grid, knots_array)
    table = (landmark_map(ranks, landmarks) if landmarks else ranks).astype(np.float32)
    table.flags.writeable = False
    return low, scale, table


def _intensity_samples(data, max_samples):
    """Every voxel, or every k-th in memory order above `max_samples` (k odd: see `intensity_limits`)."""
    samples = data.ravel(order="K")
    if samples.size > max_samples:
        stride = -(-samples.size // max_samples) | 1
        samples = samples[::stride]
    return samples


def restore_labels(labels_prepared, geometry):
    """Maps prepared-grid labels `[num_slices, H, W]` back onto the original grid (nearest neighbour).

    Returns:
        uint8 array of `geometry.original_shape` in the input's axis order, ready for
        `nifti_io.save_like(..., reference=<input volume>)`. Voxels outside the prepared window (cropped
        away) are background (0).
    """
    labels_prepared = np.asarray(labels_prepared)
    _check_prepared_shape(labels_prepared.shape[:3], geometry)
    restored = np.empty(geometry.original_shape, dtype=np.uint8)
    canonical_slices(restored, geometry)[:] = restore_label_slices(labels_prepared, geometry)
    return restored


def restore_label_slices(labels_prepared, geometry):
    """Labels of a slab of prepared slices `[n, H, W]` on the original in-plane grid, uint8 `[n, n0, n1]`.

    The result is in RAS slice order: write it into `canonical_slices(output, geometry)[start:start + n]`
    to place it in an output volume in the input's axis order (as `restore_labels` does for all slices).
    """
    labels_prepared = np.asarray(labels_prepared)
    _check_prepared_shape(labels_prepared.shape[:3], geometry, num_slices=len(labels_prepared))
    return _restore_in_plane(labels_prepared.astype(np.uint8, copy=False), geometry, order=0, cval=0)


def restore_probabilities(probabilities_prepared, geometry, background_class=0):
    """Maps per-class probabilities `[num_slices, H, W, C]` back onto the original grid (linear, per class).

    Args:
        probabilities_prepared: float array `[num_slices, H, W, num_classes]`.
        geometry: `VolumeGeometry` from `prepare_volume`.
        background_class: int or None. Voxels outside the prepared window get probability 1 for this class
            and 0 for the others (all 0 if None). Defaults to 0.

    Returns:
        float32 `[*original_shape, num_classes]`; linear interpolation keeps per-voxel sums at 1.
    """
    probabilities_prepared = np.asarray(probabilities_prepared, dtype=np.float32)
    _check_prepared_shape(probabilities_prepared.shape[:3], geometry)
    restored = np.empty(tuple(geometry.original_shape) + probabilities_prepared.shape[3:], dtype=np.float32)
    canonical_slices(restored, geometry)[:] = restore_probability_slices(
        probabilities_prepared, geometry, background_class
    )
    return restored


def restore_probability_slices(probabilities_prepared, geometry, background_class=0):
    """Probabilities of a slab `[n, H, W, C]` on the original in-plane grid, float32 `[n, n0, n1, C]`.

    RAS slice order, like `restore_label_slices`; `background_class` as in `restore_probabilities`.
    """
    probabilities_prepared = np.asarray(probabilities_prepared, dtype=np.float32)
    _check_prepared_shape(probabilities_prepared.shape[:3], geometry, num_slices=len(probabilities_prepared))
    cval = np.zeros(probabilities_prepared.shape[3], dtype=np.float32)
    if background_class is not None:
        cval[background_class] = 1.0
    return _restore_in_plane(probabilities_prepared, geometry, order=1, cval=cval)


def restore_labels_from_probability_slices(probabilities_prepared, geometry):
    """Arg-max labels `[n, n0, n1]` uint8 of probabilities `[n, H, W, C]` restored onto the original in-plane grid.

    Bit for bit `argmax(restore_probability_slices(probabilities_prepared, geometry, background_class=0))`,
    computed only where it can differ from the nearest-neighbour restoration of the prepared arg-max: an output
    pixel interpolates the four prepared pixels around it with weights ≥ 0, so where all four have the same
    arg-max class the interpolation has it too. Only pixels near an organ's edge are interpolated (a few
    percent of a CT slice), which keeps restoration at the cost of the nearest-neighbour one.
    """
    probabilities = np.asarray(probabilities_prepared, dtype=np.float32)
    _check_prepared_shape(probabilities.shape[:3], geometry, num_slices=len(probabilities))
    prepared_labels = np.argmax(probabilities, axis=-1).astype(np.uint8)
    labels = _restore_in_plane(prepared_labels, geometry, order=0, cval=0)
    inside_r, low_r, high_r, weight_r = _linear_support(geometry.window_coords(0), geometry.image_size)
    inside_q, low_q, high_q, weight_q = _linear_support(geometry.window_coords(1), geometry.image_size)
    # Corners of each output pixel's cell: rows (low_r | high_r) x columns (low_q | high_q). `split` marks
    # column pairs that differ on one prepared row; a cell spanning rows h and h + 1 is mixed if either row's
    # pair is split or the two rows differ; a cell on one row (high_r == low_r) if that row's pair is split.
    left = prepared_labels[:, :, low_q]
    split = left != prepared_labels[:, :, high_q]
    two_rows = split[:, :-1] | split[:, 1:] | (left[:, :-1] != left[:, 1:])
    cells = np.concatenate([two_rows, split], axis=1)  # rows 0..H-2: two-row cells, then H one-row cells
    one_row = high_r == low_r
    mixed = cells[:, np.where(one_row, two_rows.shape[1] + low_r, low_r)]
    mixed &= inside_r[None, :, None] & inside_q[None, None, :]
    s, i, j = np.nonzero(mixed)
    if len(s):
        wq, wr = weight_q[j, None], weight_r[i, None]
        # The separable order and float32 arithmetic of `_resample_axis`: columns first, then rows.
        top = probabilities[s, low_r[i], low_q[j]] * (1 - wq)
        top += probabilities[s, low_r[i], high_q[j]] * wq
        bottom = probabilities[s, high_r[i], low_q[j]] * (1 - wq)
        bottom += probabilities[s, high_r[i], high_q[j]] * wq
        top *= 1 - wr
        top += bottom * wr
        labels[s, i, j] = np.argmax(top, axis=-1)
    return labels


def context_slices(volume, index, context):
    """The 2T+1 slices centred on `index` as channels, `[H, W, 2T+1]`; indices past the ends repeat the edge slice."""
    return context_stack(volume, np.asarray([index]), context)[0]


def context_stack(volume, indices, context):
    """Vectorised `context_slices`: `[N, H, W, 2T+1]` for slice `indices` (shape [N]) of `volume` `[S, H, W]`."""
    num_slices = volume.shape[0]
    offsets = np.arange(-context, context + 1)
    neighbours = np.clip(np.asarray(indices)[:, None] + offsets[None, :], 0, num_slices - 1)
    stacks = np.asarray(volume[neighbours.ravel()]).reshape(len(neighbours), len(offsets), *volume.shape[1:])
    return np.moveaxis(stacks, 1, -1)


def _check_prepared_shape(shape, geometry, num_slices=None):
    num_slices = geometry.num_slices if num_slices is None else num_slices
    expected = (num_slices, geometry.image_size, geometry.image_size)
    if tuple(shape) != expected:
        raise ValueError(f"prepared array has shape {tuple(shape)}, geometry expects {expected}")


def _resample_in_plane(slices, geometry, order):
    """`[S, n0, n1]` canonical slices → `[S, image_size, image_size]` on the prepared grid."""
    out = _resample_axis(slices, 1, geometry.source_coords(0), order, cval=0)
    return np.ascontiguousarray(_resample_axis(out, 2, geometry.source_coords(1), order, cval=0))


def _restore_in_plane(prepared, geometry, order, cval):
    # W first: gathers along the inner axis cost per element, so do them while the array is small.
    out = _resample_axis(prepared, 2, geometry.window_coords(1), order, cval)
    return _resample_axis(out, 1, geometry.window_coords(0), order, cval)


def _resample_axis(array, axis, source_coords, order, cval):
    """Samples `array` along `axis` at fractional `source_coords` (one per output index).

    Linear (`order=1`) or nearest (`order=0`). Positions within half a pixel of the edge extend the edge
    pixel (the pixel covers that half); positions further out get `cval` (scalar, or per trailing channel).
    Integer positions are copied exactly (no arithmetic), which makes identity resampling lossless.
    """
    size = array.shape[axis]
    if order == 0:
        inside, rounded = _nearest_support(source_coords, size)
        out = np.take(array, rounded, axis=axis)
    else:
        inside, low, high, weight = _linear_support(source_coords, size)
        if (low == high).all():  # integer positions: a copy, no arithmetic
            out = np.take(array, low, axis=axis)
        else:
            shape = [1] * array.ndim
            shape[axis] = len(source_coords)
            weight = weight.reshape(shape)
            out = np.take(array, low, axis=axis)
            out *= 1 - weight
            out += np.take(array, high, axis=axis) * weight
    if not inside.all():
        index = [slice(None)] * array.ndim
        index[axis] = ~inside
        out[tuple(index)] = cval
    return out


def _nearest_support(source_coords, size):
    """`(inside, nearest index)` of fractional positions along an axis of `size` pixels (see `_resample_axis`)."""
    inside = (source_coords >= -0.5 - 1e-6) & (source_coords <= size - 0.5 + 1e-6)
    clamped = np.clip(source_coords, 0, size - 1)
    return inside, np.floor(clamped + 0.5).astype(np.intp)


def _linear_support(source_coords, size):
    """`(inside, low, high, weight float32)` of linear interpolation at fractional positions: each position is
    `value[low] * (1 - weight) + value[high] * weight`. When every position is within 1e-9 of a pixel centre
    the positions are taken as exact (low = high = nearest, weight 0), so identity resampling is lossless."""
    inside, rounded = _nearest_support(source_coords, size)
    clamped = np.clip(source_coords, 0, size - 1)
    if np.allclose(clamped, rounded, rtol=0, atol=1e-9):
        return inside, rounded, rounded, np.zeros(len(rounded), dtype=np.float32)
    low = np.minimum(np.floor(clamped), max(size - 2, 0)).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    return inside, low, high, (clamped - low).astype(np.float32)
