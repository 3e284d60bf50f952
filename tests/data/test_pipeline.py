"""Volume cache and tf.data pipelines: streaming reads, determinism, one-hot targets, augmentation, splits."""

import os

import numpy as np
import pytest

from keras_cdseg.config import DataConfig
from keras_cdseg.data.cache import MANIFEST, VolumeCache, build_cache
from keras_cdseg.data.dataset import Case, load_dataset, write_dataset_json
from keras_cdseg.data.nifti_io import load_image, load_label, save_array
from keras_cdseg.data.preprocessing import context_stack, prepare_volume
from keras_cdseg.errors import InputError

tf = pytest.importorskip("tensorflow")
from keras_cdseg.data.pipeline import (  # noqa: E402 - after the TensorFlow check
    eval_slice_order,
    make_eval_dataset,
    make_training_dataset,
    split_cases,
)

CONFIG = DataConfig(image_size=32, target_spacing_mm=1.5, context=1)
LABELS = {"background": 0, "liver": 1, "marker": 2}


def _write_case(root, case_id, modality, num_slices, rng, affine):
    """A 30×28 volume: a 'liver' block and a marker at low (H, W) indices on all but the end slices."""
    label = np.zeros((30, 28, num_slices), np.uint8)
    label[12:24, 10:22, 1 : num_slices - 1] = 1
    label[2:7, 2:7, 1 : num_slices - 1] = 2
    scale, offset = (1.0, 0.0) if modality == "CT" else (37.5, 1000.0)
    image = (label * 80.0 + np.arange(num_slices) * 5.0 + rng.normal(0, 5, label.shape)) * scale + offset
    save_array(image.astype(np.float32), affine, root / "imagesTr" / f"{case_id}.nii.gz")
    save_array(label, affine, root / "labelsTr" / f"{case_id}.nii.gz")
    return Case(case_id, root / "imagesTr" / f"{case_id}.nii.gz", root / "labelsTr" / f"{case_id}.nii.gz", modality)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(0)
    ras = np.diag([1.5, 1.5, 3.0, 1.0])
    cases = [
        _write_case(root, "ct_000", "CT", 6, rng, ras),
        _write_case(root, "ct_001", "CT", 4, rng, ras),
        _write_case(root, "mr_000", "MR", 5, rng, ras),
        _write_case(root, "mr_001", "MR", 3, rng, ras),
    ]
    write_dataset_json(root, "tiny", LABELS, cases, [])
    return root


@pytest.fixture(scope="module")
def cache(dataset_root):
    return build_cache(load_dataset(dataset_root), CONFIG, dataset_root / "cache", progress=False)


def _batches(dataset, num):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(num)]


def test_cache_holds_prepare_volume_output_memory_mapped(cache, dataset_root):
    index = load_dataset(dataset_root)
    assert set(cache.case_ids) == {c.case_id for c in index.training}
    case = index.training[0]
    expected = prepare_volume(load_image(case.image), CONFIG, load_label(case.label))
    image, label = cache.image(case.case_id), cache.label(case.case_id)
    assert isinstance(image, np.memmap) and image.dtype == np.float32 and not image.flags.writeable
    np.testing.assert_array_equal(image, expected.image)
    np.testing.assert_array_equal(label, expected.label)
    entry = cache.entry(case.case_id)
    assert entry.modality == "CT" and entry.num_slices == 6 and entry.geometry == expected.geometry
    assert entry.foreground_pixels == tuple(int(n) for n in (expected.label > 0).sum(axis=(1, 2)))
    assert cache.num_classes == 3 and VolumeCache(dataset_root / "cache").case_ids == cache.case_ids


def test_cache_rebuilds_only_changed_cases(tmp_path, dataset_root):
    index = load_dataset(dataset_root)
    cache_dir = tmp_path / "cache"
    first = build_cache(index, CONFIG, cache_dir, progress=False)
    files = {p.name: p.stat().st_mtime_ns for p in cache_dir.glob("*.npy")}
    # A different context reuses the arrays (context is applied when reading).
    build_cache(index, DataConfig(image_size=32, context=2), cache_dir, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache_dir.glob("*.npy")} == files
    # Touching one source rebuilds that case under a new key and removes its old files.
    os.utime(index.training[1].image, ns=(1, 1))
    rebuilt = build_cache(index, CONFIG, cache_dir, progress=False)
    changed = {"ct_001"}
    assert rebuilt.entry("ct_001").key != first.entry("ct_001").key
    for case_id in set(first.case_ids) - changed:
        assert rebuilt.entry(case_id).key == first.entry(case_id).key
    names = sorted(p.name for p in cache_dir.glob("ct_001.*"))
    assert len(names) == 3 and all(rebuilt.entry("ct_001").key in n for n in names)
    # Another image size is another cache: the manifest drops the old entries.
    other = build_cache(index, DataConfig(image_size=16), cache_dir, cases=["mr_001"], progress=False)
    assert other.case_ids == ("mr_001",) and other.image("mr_001").shape[1:] == (16, 16)


def test_cache_rejects_undeclared_label_values(tmp_path, dataset_root):
    index = load_dataset(dataset_root)
    bad_root = tmp_path / "bad"
    (bad_root / "imagesTr").mkdir(parents=True)
    (bad_root / "labelsTr").mkdir()
    case = _write_case(bad_root, "ct_bad", "CT", 3, np.random.default_rng(1), np.eye(4))
    write_dataset_json(bad_root, "bad", {"background": 0, "liver": 1}, [case], [])
    with pytest.raises(InputError, match=r"ct_bad.*not declared"):
        build_cache(load_dataset(bad_root), CONFIG, tmp_path / "cache", progress=False)
    with pytest.raises(InputError, match="not in the dataset"):
        build_cache(index, CONFIG, tmp_path / "cache2", cases=["nope"], progress=False)
    assert not (tmp_path / "cache" / MANIFEST).exists()


def test_training_batches_are_context_stacks_with_one_hot_labels(cache):
    dataset = make_training_dataset(cache, cache.case_ids, CONFIG, batch_size=5, seed=3, augment=False)
    assert dataset.element_spec[0].shape.as_list() == [5, 32, 32, 3]
    assert dataset.element_spec[1].shape.as_list() == [5, 32, 32, 3]
    seen_cases = set()
    for x, y in _batches(dataset, 6):
        assert x.dtype == np.float32 and y.dtype == np.float32
        np.testing.assert_array_equal(y.sum(axis=-1), 1)
        for sample_x, sample_y in zip(x, y):
            # Find the (case, slice) whose context stack this sample is, then check its target.
            matches = [
                (case_id, s)
                for case_id in cache.case_ids
                for s in range(cache.entry(case_id).num_slices)
                if np.array_equal(context_stack(cache.image(case_id), np.array([s]), 1)[0], sample_x)
            ]
            assert len(matches) == 1
            case_id, s = matches[0]
            seen_cases.add(case_id)
            np.testing.assert_array_equal(sample_y.argmax(axis=-1), cache.label(case_id)[s])
    assert len(seen_cases) >= 3  # shuffled across cases (and so modalities)


def test_training_dataset_is_deterministic_per_seed(cache):
    def first_batches(seed):
        return _batches(make_training_dataset(cache, cache.case_ids, CONFIG, batch_size=4, seed=seed), 3)

    same_a, same_b, other = first_batches(7), first_batches(7), first_batches(8)
    for (xa, ya), (xb, yb) in zip(same_a, same_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xo) for (xa, _), (xo, _) in zip(same_a, other))


def test_augmentation_keeps_anatomy_sides(cache):
    plain = _batches(make_training_dataset(cache, cache.case_ids, CONFIG, batch_size=6, seed=11, augment=False), 4)
    augmented = _batches(make_training_dataset(cache, cache.case_ids, CONFIG, batch_size=6, seed=11), 4)
    for (x_plain, y_plain), (x_aug, y_aug) in zip(plain, augmented):
        assert not np.allclose(x_plain, x_aug)  # same slices (same seed), changed by augmentation
        labels_plain, labels_aug = y_plain.argmax(-1), y_aug.argmax(-1)
        for sample in range(len(labels_aug)):
            rows, cols = np.nonzero(labels_aug[sample] == 2)
            # The marker sits in the low-H, low-W corner: a flip along either axis would move it past the centre.
            assert (rows.size > 0) == bool(np.any(labels_plain[sample] == 2))
            assert rows.size == 0 or (rows.mean() < 12 and cols.mean() < 12)
            liver_plain, liver_aug = labels_plain[sample] == 1, labels_aug[sample] == 1
            if liver_plain.sum():
                overlap = 2 * (liver_plain & liver_aug).sum() / (liver_plain.sum() + liver_aug.sum())
                assert overlap > 0.6


def test_foreground_weight_shifts_slice_sampling(cache):
    def foreground_fraction(weight):
        dataset = make_training_dataset(
            cache, cache.case_ids, CONFIG, batch_size=32, seed=0, augment=False, foreground_weight=weight
        )
        y = np.concatenate([y for _, y in _batches(dataset, 4)])
        return np.mean(y[..., 1].reshape(len(y), -1).max(axis=1) > 0)

    natural = sum(sum(n > 0 for n in cache.entry(c).foreground_pixels) for c in cache.case_ids)
    natural /= sum(cache.entry(c).num_slices for c in cache.case_ids)  # liver is on 10 of 18 slices
    assert abs(foreground_fraction(1.0) - natural) < 0.15
    assert foreground_fraction(20.0) > 0.9
    with pytest.raises(InputError, match="foreground_weight"):
        make_training_dataset(cache, cache.case_ids, CONFIG, foreground_weight=0)


def test_eval_dataset_is_ordered_and_finite(cache):
    cases = ["mr_001", "ct_000"]
    dataset = make_eval_dataset(cache, cases, CONFIG, batch_size=4)
    batches = _batches(dataset, 100)
    assert [len(x) for x, _ in batches] == [4, 4, 1]
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    order = eval_slice_order(cache, cases)
    assert order[:4] == [("mr_001", 0), ("mr_001", 1), ("mr_001", 2), ("ct_000", 0)]
    for row, (case_id, s) in enumerate(order):
        np.testing.assert_array_equal(x[row], context_stack(cache.image(case_id), np.array([s]), 1)[0])
        np.testing.assert_array_equal(y[row].argmax(-1), cache.label(case_id)[s])
    no_context = DataConfig(image_size=32, context=0)
    images_only = [b.numpy() for b in make_eval_dataset(cache, cases, no_context, 9, with_labels=False)]
    assert [b.shape for b in images_only] == [(9, 32, 32, 1)]
    with pytest.raises(InputError, match="prepared with"):
        make_eval_dataset(cache, cases, DataConfig(image_size=64))


def test_split_cases_by_case_and_stratified_by_modality():
    cases = [Case(f"ct_{i}", None, None, "CT") for i in range(10)]
    cases += [Case(f"mr_{i}", None, None, "MR") for i in range(4)]
    train, val = split_cases(cases, 0.25, seed=0)
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(cases)
    assert sorted(c.modality for c in val) == ["CT", "CT", "CT", "MR"]  # 2.5 rounds up to 3, 1 MR
    assert split_cases(cases, 0.25, seed=0) == (train, val)
    assert split_cases(cases, 0.25, seed=1) != (train, val)
    assert [c for c in cases if c in train] == list(train)  # input order kept
    # Small groups still give one validation case each and keep one for training.
    tiny_train, tiny_val = split_cases(cases[:2] + cases[-2:], 0.1, seed=0)
    assert sorted(c.modality for c in tiny_val) == ["CT", "MR"] and len(tiny_train) == 2
    with pytest.raises(InputError):
        split_cases(cases, 1.0, seed=0)


def test_organ_sampling_gives_every_case_the_same_share_and_favours_small_organs(cache):
    dataset = make_training_dataset(cache, cache.case_ids, CONFIG, batch_size=64, seed=0, augment=False,
                                    sampling="organs")  # fmt: skip
    y = np.concatenate([y for _, y in _batches(dataset, 4)])
    marker = np.mean(y[..., 2].reshape(len(y), -1).max(axis=1) > 0)
    # The marker is on the same slices as the liver here, so both get their 2/3 plus the uniform third's share.
    natural = sum(sum(n > 0 for n in cache.entry(c).foreground_pixels) for c in cache.case_ids)
    natural /= sum(cache.entry(c).num_slices for c in cache.case_ids)
    assert marker > natural + 0.1
    from keras_cdseg.data.pipeline import _organ_sampling_table

    slots_case, _, weights = _organ_sampling_table(cache, cache.case_ids, 3)
    shares = [weights[slots_case == i].sum() for i in range(len(cache.case_ids))]
    np.testing.assert_allclose(shares, 1 / len(cache.case_ids))  # a 3-slice case weighs as much as a 6-slice one
    with pytest.raises(InputError, match="sampling"):
        make_training_dataset(cache, cache.case_ids, CONFIG, sampling="balanced")
