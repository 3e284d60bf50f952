"""Import of all 34 real scans of ../shared/data/abdomen_ct_mr (20 BTCV CT + 14 CHAOS T2-SPIR MR) with the
command of docs/import.md, reading every file once."""

import json
from collections import Counter
from pathlib import Path

import nibabel
import pytest
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.data.dataset import load_dataset

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "abdomen_ct_mr"
LABELS = {"background": 0, "liver": 1, "right_kidney": 2, "left_kidney": 3, "spleen": 4}

pytestmark = pytest.mark.skipif(
    not (DATA / "ct").is_dir() or not (DATA / "mr").is_dir(),
    reason=f"real scans not found at {DATA.resolve()} (the shared abdomen_ct_mr data set lies beside the repository in CI)",
)


def test_all_34_real_scans_import_into_one_dataset(tmp_path, monkeypatch):
    loads, saves = Counter(), []
    real_load, real_save = nibabel.load, nibabel.save
    monkeypatch.setattr(nibabel, "load", lambda path, *a, **k: loads.update([str(path)]) or real_load(path, *a, **k))
    monkeypatch.setattr(nibabel, "save", lambda img, path, *a, **k: saves.append(str(path)) or real_save(img, path, *a, **k))
    dst = tmp_path / "abdomen"
    result = CliRunner().invoke(cli, [
        "preprocess", str(DATA / "ct"), str(DATA / "mr"), str(dst), "--modality", "CT", "--modality", "MR",
        "--labels", "liver=1,right_kidney=2,left_kidney=3,spleen=4", "-q",
    ])  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "34 training, 0 test cases (20 CT, 14 MR)" in result.output and "0 warning(s)" in result.output
    index = load_dataset(dst)
    assert index.labels == LABELS
    assert Counter(case.modality for case in index.training) == {"CT": 20, "MR": 14}
    report = json.loads((dst / "preprocess.json").read_text())
    mapping = {"liver": [1], "right_kidney": [2], "left_kidney": [3], "spleen": [4]}
    assert [(s["path"], s["modality"], s["num_cases"], s["label_mapping"]) for s in report["sources"]] == [
        (str((DATA / "ct").resolve()), "CT", 20, mapping), (str((DATA / "mr").resolve()), "MR", 14, mapping),
    ]  # fmt: skip
    for case in report["cases"]:
        assert case["source"]["modality"] == case["modality"] and Path(case["image_source"]).parent.parent.name == case["modality"].lower()
        assert set(case["label_voxels"]) == {"0", "1", "2", "3", "4"}, case["case_id"]  # every organ in every scan
        for key, folder in (("image_source", "imagesTr"), ("label_source", "labelsTr")):
            assert (dst / folder / Path(case[key]).name).read_bytes() == Path(case[key]).read_bytes()
    # Every written file is decoded once (validation) and nothing is re-encoded: the labels are already numbered so.
    assert len(loads) == 68 and set(loads.values()) == {1} and saves == []
