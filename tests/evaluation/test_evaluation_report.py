"""run_evaluation: the report directory, strict JSON with explicit non-finite values, CSV, Markdown, PNGs."""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from keras_cdseg.errors import InputError
from keras_cdseg.evaluation import CasePair, run_evaluation, to_json_safe

LABELS = {"liver": 1, "spleen": 2}


def _strict_json(path):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _pairs():
    rng = np.random.default_rng(0)
    pairs = []
    for i, modality in enumerate(["CT", "CT", "MR"]):
        labels_gt = np.zeros((24, 20, 10), np.uint8)
        labels_gt[4:16, 4:16, 2:8] = 1
        labels_gt[17:22, 14:19, 3:7] = 2
        labels_pred = np.roll(labels_gt, i, axis=1)
        if modality == "MR":
            labels_pred[labels_pred == 2] = 0  # missed spleen: infinite distances, flagged
        image = rng.normal(size=labels_gt.shape).astype(np.float32) + labels_gt
        pairs.append(CasePair(f"{modality.lower()}_{i}", labels_gt, labels_pred, (0.9, 0.9, 2.5), modality, image))
    return pairs


def test_report_directory_contents(tmp_path):
    out_dir = tmp_path / "report"
    report = run_evaluation(iter(_pairs()), LABELS, out_dir, num_cases=3, settings={"pred_dir": "p"}, progress=False)
    assert sorted(p.name for p in out_dir.iterdir()) == ["overlays", "per_case.csv", "report.json", "report.md"]
    assert report["num_cases"] == 3

    saved = _strict_json(out_dir / "report.json")
    assert saved["settings"]["scoring"] == "chaos" and saved["settings"]["pred_dir"] == "p"
    assert saved["settings"]["score_thresholds"]["rmsd"] == {"metric": "rmsd_mm", "score_0_at": 27.0}
    assert saved["versions"]["numpy"] == np.__version__
    mr_spleen = saved["cases"][2]["classes"]["spleen"]
    assert mr_spleen["assd_mm"] is None and mr_spleen["nonfinite"]["assd_mm"] == "inf"
    assert mr_spleen["nonfinite"]["precision"] == "nan"
    assert mr_spleen["flags"] == ["empty_pred"] and saved["cases"][2]["flags"] == ["spleen:empty_pred"]
    spleen_all = saved["summary"]["spleen"]["all"]
    assert spleen_all["metrics"]["assd_mm"]["mean"] is None
    assert spleen_all["metrics"]["assd_mm"]["nonfinite"]["mean"] == "inf"
    assert spleen_all["metrics"]["assd_mm"]["num_nonfinite"] == 1
    assert spleen_all["flags"] == {"empty_pred": 1}
    ct_scores = [c["classes"]["spleen"]["scores"]["overall"] for c in saved["cases"][:2]]
    assert spleen_all["scores"]["overall"]["mean"] == pytest.approx(sum(ct_scores) / 3)
    assert saved["summary"]["liver"]["CT"]["num_cases"] == 2

    with open(out_dir / "per_case.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert rows[5]["class"] == "spleen" and rows[5]["modality"] == "MR"
    assert rows[5]["assd_mm"] == "inf" and rows[5]["flags"] == "empty_pred"
    assert float(rows[0]["dice"]) == 1.0 and math.isnan(float(rows[5]["precision"]))

    markdown = (out_dir / "report.md").read_text()
    assert "## Scores, mean over cases (CT / MR)" in markdown
    assert "| Class | VO | RVD | ASSD | RMSD | MSSD | Overall |" in markdown
    assert "| mr_2 | MR | spleen |" in markdown and "`spleen:empty_pred`" in markdown

    for case in ("ct_0", "ct_1", "mr_2"):
        with Image.open(out_dir / "overlays" / f"{case}.png") as png:
            assert png.format == "PNG" and png.width >= 3 * 256


def test_existing_report_directory_is_refused(tmp_path):
    (tmp_path / "report").mkdir()
    with pytest.raises(InputError, match="already exists"):
        run_evaluation(_pairs(), LABELS, tmp_path / "report", progress=False)


def test_a_failing_case_leaves_no_report_directory(tmp_path):
    pairs = _pairs()
    bad = CasePair("bad", pairs[0].labels_gt, pairs[0].labels_pred[:, :-1], (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="bad"):
        run_evaluation([pairs[0], bad], LABELS, tmp_path / "report", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_sliver07_scoring_and_no_overlays(tmp_path):
    report = run_evaluation(_pairs()[:1], LABELS, tmp_path / "r", scoring="sliver07", overlays=False, progress=False)
    assert not (tmp_path / "r" / "overlays").exists()
    assert set(report["summary"]["liver"]["all"]["scores"]) == {"voe", "rvd", "assd", "rmsd", "mssd", "overall"}
    assert "| Class | VOE | RVD | ASSD | RMSD | MSSD | Overall |" in (tmp_path / "r" / "report.md").read_text()


def test_to_json_safe():
    value = {"a": math.inf, "b": [1.0, math.nan, -math.inf], "c": np.float32(0.5), "d": np.int64(3), "e": True,
             "f": {"g": math.nan}}
    assert to_json_safe(value) == {
        "a": None, "b": [1.0, "nan", "-inf"], "c": 0.5, "d": 3, "e": True, "f": {"g": None, "nonfinite": {"g": "nan"}},
        "nonfinite": {"a": "inf"},
    }
    json.dumps(to_json_safe(value), allow_nan=False)
