"""Synthetic CT/MR phantoms: determinism, dataset layout, intensity models, orientation, CLI."""

import filecmp
import json
import time

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from cdseg.main import cli
from keras_cdseg.data.phantoms import grid as phantom_grid
from keras_cdseg.data.dataset import load_dataset, validate_dataset
from keras_cdseg.data.phantoms.anatomy import TISSUE, sample_anatomy
from keras_cdseg.data.phantoms.paint import paint_tissues
from keras_cdseg.data.phantoms.synthetic import (
    case_rng,
    make_ct_case,
    make_mr_case,
    parse_label_spec,
    write_synthetic_dataset,
)
from keras_cdseg.errors import InputError

LIVER, SPLEEN, KIDNEYS = 1, 2, 3


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ds"
    index = write_synthetic_dataset(root, num_ct=3, num_mr=3, seed=7, size="small", num_test=1)
    return root, index


@pytest.fixture(scope="module")
def ct_cases():
    return [make_ct_case(case_rng(11, "CT", i), size="small") for i in range(4)]


@pytest.fixture(scope="module")
def mr_cases():
    return [make_mr_case(case_rng(11, "MR", i), size="small") for i in range(4)]


def _world_centroid(case, value):
    ijk = np.argwhere(case.label == value).mean(axis=0)
    return (case.affine @ np.append(ijk, 1.0))[:3]


def test_same_seed_same_bytes_different_seed_different_images(tmp_path):
    kwargs = dict(num_ct=1, num_mr=1, size="small", num_test=0)
    write_synthetic_dataset(tmp_path / "a", seed=3, **kwargs)
    write_synthetic_dataset(tmp_path / "b", seed=3, **kwargs)
    write_synthetic_dataset(tmp_path / "c", seed=4, **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6  # 2 images, 2 labels, dataset.json, synth.json
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    for rel in ("imagesTr/ct_000.nii.gz", "imagesTr/mr_000.nii.gz"):
        a = np.asarray(nib.load(tmp_path / "a" / rel).dataobj)
        c = np.asarray(nib.load(tmp_path / "c" / rel).dataobj)
        assert a.shape != c.shape or not np.array_equal(a, c)


def test_case_depends_only_on_its_own_seed_key():
    first = make_mr_case(case_rng(5, "MR", 2))
    again = make_mr_case(case_rng(5, "MR", 2))
    other = make_mr_case(case_rng(5, "MR", 3))
    assert np.array_equal(first.image, again.image) and np.array_equal(first.label, again.label)
    assert np.array_equal(first.affine, again.affine)
    assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)


def test_dataset_json_matches_files_and_validates(small_dataset):
    root, index = small_dataset
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "liver": 1, "spleen": 2, "kidneys": 3}
    assert meta["numTraining"] == len(meta["training"]) == 4 and meta["numTest"] == len(meta["test"]) == 2
    referenced = set()
    for split, folder in (("training", "Tr"), ("test", "Ts")):
        assert {e["modality"] for e in meta[split]} == {"CT", "MR"}
        for entry in meta[split]:
            assert entry["image"].startswith(f"./images{folder}/") and entry["label"].startswith(f"./labels{folder}/")
            referenced |= {entry["image"][2:], entry["label"][2:]}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*.nii.gz")}
    assert on_disk == referenced
    # The shared loader and validator accept it: same grid, declared label values, nothing empty.
    loaded = load_dataset(root)
    assert loaded == index and loaded.labels == meta["labels"]
    checks = validate_dataset(loaded, empty_labels="error")
    assert all(c.ok for c in checks), [c.problems for c in checks]
    assert all(set(c.label_voxels) == {0, 1, 2, 3} for c in checks)
    synth = json.loads((root / "synth.json").read_text())
    assert synth["settings"]["seed"] == 7 and [c["case_id"] for c in synth["cases"]] == [
        "ct_000", "ct_001", "ct_002", "mr_000", "mr_001", "mr_002"
    ]  # fmt: skip
    assert not list(root.parent.glob(".*"))  # no temporary leftovers beside the dataset


def test_stored_dtypes_and_shared_affine(small_dataset):
    _, index = small_dataset
    for case in index.cases:
        image, label = nib.load(case.image), nib.load(case.label)
        assert image.get_data_dtype() == np.int16 and label.get_data_dtype() == np.uint8
        assert np.array_equal(image.affine, label.affine) and image.shape == label.shape
        if case.modality == "MR":
            assert np.asarray(image.dataobj).min() >= 0  # magnitude images (Rician noise)


def test_ct_hounsfield_units_per_organ(ct_cases):
    for case in ct_cases:
        assert case.image.dtype == np.int16
        liver = float(np.median(case.image[case.label == LIVER]))
        spleen = float(np.median(case.image[case.label == SPLEEN]))
        kidneys = float(np.median(case.image[case.label == KIDNEYS]))
        assert 50 <= liver <= 70, liver
        assert abs(spleen - liver) < 20, (spleen, liver)  # CT alone barely separates liver and spleen
        assert kidneys > 150, kidneys
        assert np.percentile(case.image, 1) < -900  # air
        assert case.image.max() > 400  # bone
        background = case.image[case.label == 0]
        assert np.count_nonzero(np.abs(background + 100) < 30) > 0.02 * background.size  # fat around -100 HU


def test_ct_full_resolution_grid_matches_spec():
    rng = np.random.default_rng(0)
    for _ in range(20):
        grid = phantom_grid.sample_grid(rng, "CT", "full")
        assert grid.shape[:2] == (512, 512) and 0.66 <= grid.spacing_mm[0] <= 0.8 and 2.0 <= grid.spacing_mm[2] <= 3.0
        grid = phantom_grid.sample_grid(rng, "MR", "full")
        assert grid.shape[0] in (256, 288) and 1.4 <= grid.spacing_mm[0] <= 1.9 and 5.5 <= grid.spacing_mm[2] <= 9.0


def test_mr_liver_brighter_than_spleen_and_scale_varies(mr_cases):
    liver_medians = []
    for case in mr_cases:
        assert case.image.dtype == np.int16
        liver = float(np.median(case.image[case.label == LIVER]))
        spleen = float(np.median(case.image[case.label == SPLEEN]))
        assert liver > 1.1 * spleen, (liver, spleen)
        liver_medians.append(liver)
    assert max(liver_medians) > 2 * min(liver_medians)  # uncalibrated scale: no fixed liver value


def test_full_size_mr_case():
    case = make_mr_case(case_rng(0, "MR", 1), size="full")
    assert case.image.shape[:2] in ((256, 256), (288, 288)) and 24 <= case.image.shape[2] <= 55
    assert float(np.median(case.image[case.label == LIVER])) > float(np.median(case.image[case.label == SPLEEN]))


def test_lps_case_keeps_world_anatomy_in_patients_right_upper_abdomen():
    ras = make_mr_case(case_rng(2, "MR", 0), orientation="RAS")
    lps = make_mr_case(case_rng(2, "MR", 0), orientation="LPS")
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S") and nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    # Same voxels, flipped storage: array and affine flipped together.
    assert np.array_equal(lps.image, ras.image[::-1, ::-1, :]) and np.array_equal(lps.label, ras.label[::-1, ::-1, :])
    for case in (ras, lps):
        liver, spleen, kidneys = (_world_centroid(case, v) for v in (LIVER, SPLEEN, KIDNEYS))
        # RAS+ world: the patient's right is +x, superior is +z.
        assert liver[0] > spleen[0] + 50, (liver, spleen)
        assert liver[2] > kidneys[2], (liver, kidneys)
        body = np.argwhere(ndimage.binary_fill_holes(case.image > 0.2 * np.percentile(case.image, 99)))
        body_center = (case.affine @ np.append(body.mean(axis=0), 1.0))[:3]
        assert liver[0] > body_center[0] + 20
    assert np.allclose(_world_centroid(ras, LIVER), _world_centroid(lps, LIVER))


def test_separate_kidney_labels_follow_patient_side():
    case = make_ct_case(case_rng(1, "CT", 0), labels="liver,right_kidney,left_kidney", orientation="LPS")
    right, left = _world_centroid(case, 2), _world_centroid(case, 3)
    assert right[0] > 30 > -30 > left[0]
    assert set(np.unique(case.label)) == {0, 1, 2, 3}


def test_same_anatomy_at_two_resolutions_has_the_same_liver_volume():
    anatomy = sample_anatomy(np.random.default_rng(9))
    volumes = []
    for step_mm in (4.0, 2.0):
        xy, z = np.arange(-180, 180, step_mm), np.arange(-220, 40, step_mm)
        tissue = paint_tissues(anatomy, xy, xy, z)
        liver = np.isin(tissue, [TISSUE["liver"], TISSUE["liver_vessel"], TISSUE["liver_lesion"]])
        volumes.append(liver.sum() * step_mm**3)
    assert 900e3 < volumes[1] < 2500e3
    assert abs(volumes[0] - volumes[1]) < 0.04 * volumes[1]


def test_parse_label_spec():
    assert parse_label_spec("liver") == {"background": 0, "liver": 1}
    assert parse_label_spec("kidneys, liver") == {"background": 0, "liver": 1, "kidneys": 2}
    assert parse_label_spec(["liver", "spleen"]) == {"background": 0, "liver": 1, "spleen": 2}
    for bad in ("spleen", "liver,heart", "liver,liver", "liver,kidneys,left_kidney"):
        with pytest.raises(InputError):
            parse_label_spec(bad)


def test_small_cases_are_quick():
    start = time.perf_counter()
    for i in range(2):
        make_ct_case(case_rng(0, "CT", i), size="small")
        make_mr_case(case_rng(0, "MR", i), size="small")
    assert time.perf_counter() - start < 5.0


def test_failure_midway_leaves_nothing(tmp_path):
    def interrupt(done, total, case_id, message):
        raise RuntimeError("interrupted after the first case")

    with pytest.raises(RuntimeError):
        write_synthetic_dataset(tmp_path / "ds", num_ct=2, num_mr=0, size="small", num_test=0, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_refuses_existing_and_overwrites(tmp_path):
    runner = CliRunner()
    out = tmp_path / "synth"
    args = ["synth", str(out), "--size", "small", "--num-ct", "1", "--num-mr", "1", "--num-test", "0"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "training: 2 cases (CT 1, MR 1)" in result.output and "[2/2] mr_000" in result.output
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    result = runner.invoke(cli, args + ["--seed", "1"])
    assert result.exit_code == 2
    assert "already exists" in result.output and "Traceback" not in result.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    result = runner.invoke(cli, args + ["--seed", "1", "--overwrite", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "synth.json").read_text())["settings"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_cli_rejects_bad_input_with_exit_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["synth", str(tmp_path / "x"), "--size", "small", "--labels", "liver,heart"])
    assert result.exit_code == 2 and "unknown label name" in result.output
    result = runner.invoke(cli, ["synth", str(tmp_path / "y"), "--num-ct", "1", "--num-mr", "0", "--num-test", "1"])
    assert result.exit_code == 2 and "no training case" in result.output
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = runner.invoke(cli, ["synth", str(foreign), "--size", "small", "--overwrite"])
    assert result.exit_code == 2 and "not a synthetic dataset" in result.output
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_prepare_volume_sees_the_same_anatomy_in_every_stored_orientation(small_dataset):
    from keras_cdseg.config import DataConfig
    from keras_cdseg.data.nifti_io import load_image, load_label
    from keras_cdseg.data.preprocessing import prepare_volume

    _, index = small_dataset
    orientations = set()
    for case in index.cases:
        image = load_image(case.image)
        orientations.add(nib.aff2axcodes(image.affine))
        prepared = prepare_volume(image, DataConfig(), label=load_label(case.label))
        liver = np.argwhere(prepared.label == LIVER).mean(axis=0)  # (slice, x, y) after reorienting to RAS
        spleen = np.argwhere(prepared.label == SPLEEN).mean(axis=0)
        assert liver[1] > spleen[1] + 30, (case.case_id, liver, spleen)
    assert len(orientations) >= 2, orientations


def test_installed_cdseg_script(tmp_path):
    import subprocess

    args = ["cdseg", "synth", "ds", "--size", "small", "--num-ct", "1", "--num-mr", "1", "--num-test", "0"]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[1/2] ct_000: CT training 128x128x28" in result.stderr and "Wrote" in result.stdout
    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and again.stderr.startswith("Error: ") and "Traceback" not in again.stderr
    assert len(load_dataset(tmp_path / "ds").training) == 2
