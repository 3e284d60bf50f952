"""Writes notebooks/02_cross_domain_ablation.ipynb (kept as a script so the notebook's source is reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# Cross-domain ablation: Tables 2-5 and Fig. 2\n\n"
        "This notebook reads a results directory written by\n\n"
        "```bash\n"
        "cdseg synth data --size small --num-ct 10 --num-mr 10 --num-test 3 --labels liver\n"
        "cdseg experiment ablation --data data --out ablation_results --seeds 3\n"
        "```\n\n"
        "and draws the paper's tables and figures from it. It trains nothing. Set `CDSEG_RESULTS` (or edit "
        "`RESULTS` below) to point at another results directory, e.g. one made on the CHAOS data. Without "
        "either, it reads `ablation_results/` if present, else the committed records of the synthetic run in "
        "`docs/results/ablation_synthetic/` (discussed in `docs/results.md`)."
    ),
    nbf.v4.new_code_cell(
        "import io, json, os\n"
        "from pathlib import Path\n\n"
        "CANDIDATES = [Path('ablation_results'), Path('../docs/results/ablation_synthetic')]\n"
        "RESULTS = Path(os.environ.get('CDSEG_RESULTS') or next(\n"
        "    (path for path in CANDIDATES if (path / 'runs.json').exists()), CANDIDATES[0]))\n"
        "record = json.loads((RESULTS / 'runs.json').read_text())\n"
        "figure_record = json.loads((RESULTS / 'fig2.json').read_text()) if (RESULTS / 'fig2.json').exists() else None\n"
        "counts = {}\n"
        "for run in record['runs']:\n"
        "    counts[run['status']] = counts.get(run['status'], 0) + 1\n"
        "print(RESULTS, '| status:', record['status'], '| runs:', counts)\n"
        "print('settings:', record['settings']['settings'])"
    ),
    nbf.v4.new_markdown_cell(
        "## The tables\n\n"
        "Mean ± sample std over seeds of each run's test-split mean; below each table the paired difference to "
        "Pre-BN + CAN (same seed) with a 95 % t-interval, `*` where it excludes 0. This is the same text as "
        "`RESULTS/report.md`."
    ),
    nbf.v4.new_code_cell(
        "from IPython.display import Image, Markdown, display\n"
        "from keras_cdseg.experiments.report import render_report\n\n"
        "display(Markdown(render_report(record, figure_record)))"
    ),
    nbf.v4.new_markdown_cell("## Table 2 at a glance: overall score per variant, and the paired differences"),
    nbf.v4.new_code_cell(
        "from keras_cdseg.experiments.figures import context_figure, scores_figure\n\n"
        "def show(figure):\n"
        "    buffer = io.BytesIO()\n"
        "    figure.savefig(buffer, format='png', dpi=100)\n"
        "    display(Image(buffer.getvalue()))\n\n"
        "show(scores_figure(record))"
    ),
    nbf.v4.new_markdown_cell("## Tables 5 and 4: context T, and single-modality vs cross-domain models"),
    nbf.v4.new_code_cell("show(context_figure(record))"),
    nbf.v4.new_markdown_cell(
        "## Table 3 per block: the fraction of responses that pass to the next layer\n\n"
        "Per conv block of each Table 2 variant, on the CT and MR test slices (seed mean)."
    ),
    nbf.v4.new_code_cell(
        "import numpy as np\n"
        "from matplotlib.figure import Figure\n"
        "from keras_cdseg.experiments.report import table_rows\n\n"
        "rows = [(label, key) for label, key, _ in table_rows(2)\n"
        "        if any(r['variant'] == key and r['status'] == 'finished' for r in record['runs'])]\n"
        "figure = Figure(figsize=(10, 3.2), layout='constrained')\n"
        "axes = figure.subplots(1, 2, sharey=True)\n"
        "for ax, modality in zip(axes, ('CT', 'MR')):\n"
        "    for label, key in rows:\n"
        "        runs = [r for r in record['runs'] if r['variant'] == key and r['status'] == 'finished']\n"
        "        blocks = list(runs[0]['sparsity'][modality]['per_block'])\n"
        "        values = np.mean([[r['sparsity'][modality]['per_block'][b] for b in blocks] for r in runs], axis=0)\n"
        "        ax.plot(range(len(blocks)), values, marker='.', label=label)\n"
        "    ax.set_xticks(range(len(blocks)), blocks, rotation=60, fontsize=6)\n"
        "    ax.set_title(f'{modality} test slices')\n"
        "axes[0].set_ylabel('fraction of responses > 0')\n"
        "axes[1].legend(fontsize=7)\n"
        "show(figure)"
    ),
    nbf.v4.new_markdown_cell(
        "## Fig. 2: single kernels' responses on CT vs MR, pre-norm vs post-norm\n\n"
        "Same kernel positions in both models; the overlap of the two modalities' histograms is in each title "
        "(1 = identical distributions)."
    ),
    nbf.v4.new_code_cell(
        "if figure_record and (RESULTS / figure_record['path']).exists():\n"
        "    display(Image(filename=str(RESULTS / figure_record['path'])))\n"
        "else:\n"
        "    print('no Fig. 2 PNG in', RESULTS)"
    ),
]

notebook = nbf.v4.new_notebook(cells=cells)
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = Path(__file__).resolve().parents[1] / "notebooks" / "02_cross_domain_ablation.ipynb"
nbf.write(notebook, path)
print(f"wrote {path}")
