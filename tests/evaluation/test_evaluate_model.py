"""`cdseg evaluate --model MODEL --data DATASET_DIR`: predict a split, evaluate it, report per modality."""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.data.phantoms.synthetic import write_synthetic_dataset
from keras_cdseg.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_fixtures import make_run_dir, make_threshold_predictor, threshold_card  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Small CT and MR phantoms: one training and one test case per modality, liver only."""
    root = tmp_path_factory.mktemp("evaluate_model")
    write_synthetic_dataset(root / "data", num_ct=2, num_mr=2, num_test=1, size="small", labels="liver")
    return root / "data"


@pytest.fixture(scope="module")
def run_dir(dataset):
    # Phantoms are ~380 mm wide: 12 mm pixels fit them into the 32-pixel tiny generator.
    return make_run_dir(dataset.parent / "run", target_spacing_mm=12.0, data_dir=dataset)


def test_report_groups_the_test_split_by_modality(dataset, run_dir, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(run_dir), "--data", str(dataset), "--out", str(out),
                                      "--quiet", "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Model: keras" in result.output and "liver: overall score (chaos) all " in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["mode"] == "model" and report["settings"]["split"] == "test"
    assert report["settings"]["preprocessing"]["target_spacing_mm"] == 12.0
    # --model applies the model's own post-processing, as `cdseg predict` does, and records it.
    assert report["settings"]["largest_component_classes"] == ["liver"]
    assert all(c["classes"]["liver"]["largest_component"] for c in report["cases"])
    assert all(c["classes"]["liver"]["num_components_pred"] <= 1 for c in report["cases"])
    assert [(c["case_id"], c["modality"]) for c in report["cases"]] == [("ct_001", "CT"), ("mr_001", "MR")]
    assert set(report["summary"]["liver"]) == {"all", "CT", "MR"}
    assert report["summary"]["liver"]["CT"]["num_cases"] == 1
    assert (out / "per_case.csv").is_file() and (out / "overlays" / "ct_001.png").is_file()
    assert "CT / MR" in (out / "report.md").read_text()

    # The prediction counted in the report is the one `cdseg predict` writes (same code path).
    predicted = tmp_path / "predicted"
    image = dataset / "imagesTs" / "ct_001.nii.gz"
    args = ["predict", str(image), "-o", str(predicted), "--model", str(run_dir)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    labels = np.asarray(nib.load(str(predicted / "ct_001.nii.gz")).dataobj)
    assert report["cases"][0]["classes"]["liver"]["num_voxels_pred"] == int(np.count_nonzero(labels == 1))


def test_a_perfect_predictor_scores_100_on_its_own_labels(dataset, tmp_path):
    """Evaluating the dataset's label maps as images with a threshold model gives Dice 1 on every case."""
    import shutil

    from keras_cdseg.data.dataset import load_dataset
    from keras_cdseg.evaluation.model_cases import evaluate_model

    index = load_dataset(dataset)
    labels_as_images = tmp_path / "labels_as_images"
    shutil.copytree(dataset, labels_as_images)
    for case in index.test:
        shutil.copy(case.label, labels_as_images / "imagesTs" / case.image.name)  # the image is its own label map
    card = threshold_card(image_size=160, target_spacing_mm=min(_in_plane_spacing(c.image) for c in index.test))
    report = evaluate_model(make_threshold_predictor(card), labels_as_images, tmp_path / "report", overlays=False,
                            progress=False, largest_component_classes=())  # fmt: skip
    dices = [case["classes"]["liver"]["dice"] for case in report["cases"]]
    assert len(dices) == 2 and min(dices) > 0.97


def _in_plane_spacing(path):
    return float(min(nib.load(str(path)).header.get_zooms()[:2]))


def test_model_mode_errors(dataset, run_dir, tmp_path):
    runner = CliRunner()
    for args, message in [
        (["--model", str(run_dir)], "give both --model MODEL and --data DATASET_DIR"),
        (["--model", str(run_dir), "--data", str(dataset), "--pred", str(tmp_path)], "not both"),
        (["--model", str(tmp_path), "--data", str(dataset), "--out", str(tmp_path / "r")], "not a model"),
        (["--model", str(run_dir), "--data", str(tmp_path)], "dataset.json"),
    ]:
        result = runner.invoke(cli, ["evaluate", *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "r").exists()


def test_model_that_cannot_predict_a_dataset_class_is_refused(dataset, tmp_path):
    import dataclasses

    from keras_cdseg.evaluation.model_cases import check_model_labels

    card = threshold_card()
    with pytest.raises(InputError, match="beyond the model's 2 classes"):
        check_model_labels(card, {"liver": 1, "spleen": 2})
    three = dataclasses.replace(card, labels={"background": 0, "liver": 1, "spleen": 2},
                                class_names=["background", "liver", "spleen"])  # fmt: skip
    with pytest.raises(InputError, match="'liver' is 1 in the model but 2 in the dataset"):
        check_model_labels(three, {"liver": 2, "spleen": 1, "background": 0})
    check_model_labels(three, {"background": 0, "liver": 1, "spleen": 2})
