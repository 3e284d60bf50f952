"""`cdseg experiment ablation`: options, one-line errors (exit 2), report rebuilding."""

import json

from click.testing import CliRunner

from cdseg.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_names_the_tables_and_options():
    result = invoke("experiment", "ablation", "--help")
    assert result.exit_code == 0
    for text in ("--data", "--out", "--seeds", "--steps", "--size", "--tables", "--only", "Cond-DCN", "Table 5"):
        assert text in result.output
    assert "ablation" in invoke("experiment", "--help").output


def test_bad_input_is_a_one_line_error(tmp_path, tiny_dataset):
    result = invoke("experiment", "ablation", "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.output == "Error: --data: required (the dataset directory)\n"
    result = invoke("experiment", "ablation", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    result = invoke("experiment", "ablation", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--tables", "2,x")
    assert result.exit_code == 2 and "--tables" in result.output
    result = invoke("experiment", "ablation", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--only", "pre_gn")
    assert result.exit_code == 2 and "unknown variant" in result.output
    result = invoke("experiment", "ablation", "--data", str(tiny_dataset), "--out", str(tmp_path / "r"), "--size", "36")
    assert result.exit_code == 2 and "divisible" in result.output
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = invoke("experiment", "ablation", "--data", str(tiny_dataset), "--out", str(tmp_path / "busy"))
    assert result.exit_code == 2 and "holds no ablation" in result.output
    result = invoke("experiment", "ablation", "--data", str(tiny_dataset), "--out", str(tmp_path / "busy"), "--report-only")
    assert result.exit_code == 2 and "not an ablation results directory" in result.output


def test_report_only_rebuilds_an_empty_results_directory(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "ablation.json").write_text(json.dumps({"data_dir": "/data", "settings": {}}))
    result = invoke("experiment", "ablation", "--out", str(out), "--report-only")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == {}
    assert "## Table 2" in (out / "report.md").read_text()
