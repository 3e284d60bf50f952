"""notebooks/02_cross_domain_ablation.ipynb draws the tables and figures of a tiny, real results directory."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from keras_cdseg.experiments.runner import run_ablation
from keras_cdseg.experiments.variants import AblationSettings

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_ablation_notebook_runs_on_a_results_directory(tiny_dataset, tmp_path, monkeypatch):
    results = tmp_path / "results"
    settings = AblationSettings(image_size=32, target_spacing_mm=12.0, base_filters=4, depth=2, steps=2, batch_size=2,
                                val_max_cases=1, augment=False)  # fmt: skip
    run_ablation(tiny_dataset, results, settings, seeds=[0], only=["post_bn_can"], log=lambda text: None)
    monkeypatch.setenv("CDSEG_RESULTS", str(results))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(NOTEBOOKS / "02_cross_domain_ablation.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "status: finished" in text and "'finished': 2" in text
    assert "## Table 2" in markdown and "| Post-BN + CAN |" in markdown
    # scores, context/single-modality, per-block sparsity and Fig. 2
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
