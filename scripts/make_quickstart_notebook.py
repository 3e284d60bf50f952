"""Writes notebooks/01_quickstart.ipynb (kept as a script so the notebook's source is reviewable)."""

from pathlib import Path

import nbformat as nbf

cells = [
    nbf.v4.new_markdown_cell(
        "# keras_cdseg quickstart\n\n"
        "One network segments the liver in CT **and** MR without being told which modality it sees. This notebook "
        "runs the whole pipeline through the Python API on the built-in synthetic phantoms: data → training → "
        "per-modality evaluation → prediction on a scan's own grid.\n\n"
        "Set `QUICK = True` (or the environment variable `CDSEG_QUICK=1`, which the tests use) for a seconds-long "
        "smoke run; the full settings take about five minutes on two CPU cores."
    ),
    nbf.v4.new_code_cell(
        "import os, tempfile\n"
        "from pathlib import Path\n\n"
        "QUICK = os.environ.get('CDSEG_QUICK', '0') == '1'\n"
        "WORK = Path(os.environ.get('CDSEG_WORK') or tempfile.mkdtemp(prefix='cdseg_quickstart_'))\n"
        "print('working in', WORK)"
    ),
    nbf.v4.new_markdown_cell("## 1. Synthetic CT and MR phantoms (unpaired, different scanners, different intensity scales)"),
    nbf.v4.new_code_cell(
        "import keras_cdseg\n"
        "from keras_cdseg.demo import QUICK as QUICK_SETTINGS, DemoSettings\n\n"
        "settings = QUICK_SETTINGS if QUICK else DemoSettings()\n"
        "index = keras_cdseg.write_synthetic_dataset(\n"
        "    WORK / 'data', num_ct=settings.num_ct, num_mr=settings.num_mr, seed=0, size='small',\n"
        "    num_test=settings.num_test, labels='liver', progress=None)\n"
        "print(len(index.training), 'training and', len(index.test), 'test cases; labels', index.labels)"
    ),
    nbf.v4.new_markdown_cell("## 2. Train one modality-blind network (pre-norm BatchNorm U-Net + conditional adversarial loss)"),
    nbf.v4.new_code_cell(
        "run_config = settings.run_config(WORK / 'data')\n"
        "summary = keras_cdseg.train(run_config, WORK / 'run', verbose=0)\n"
        "summary['status'], summary['steps_done'], summary['best_val_score']"
    ),
    nbf.v4.new_code_cell(
        "import csv\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\n\n"
        "rows = list(csv.DictReader(open(WORK / 'run' / 'history.csv')))\n"
        "steps = [int(r['step']) for r in rows]\n"
        "fig, ax = plt.subplots(figsize=(5, 3))\n"
        "for key in ('val_dice_liver_CT', 'val_dice_liver_MR'):\n"
        "    ax.plot(steps, [float(r[key]) for r in rows], marker='o', label=key)\n"
        "ax.set_xlabel('step'); ax.set_ylabel('validation liver Dice'); ax.legend()\n"
        "plt.show()"
    ),
    nbf.v4.new_markdown_cell("## 3. Predict each test scan on its own voxel grid and score it per modality"),
    nbf.v4.new_code_cell(
        "import numpy as np\n"
        "from keras_cdseg.data.nifti_io import load_image, load_label\n\n"
        "generator = keras_cdseg.load_model(keras_cdseg.load_run(WORK / 'run').generator_path('best'))\n"
        "predict = keras_cdseg.keras_predictor(generator)\n"
        "results = []\n"
        "for case in index.test:\n"
        "    image, label = load_image(case.image), load_label(case.label)\n"
        "    prediction = keras_cdseg.segment_volume(predict, image, run_config.data)\n"
        "    assert prediction.shape == image.shape  # the scan's own grid, whatever its orientation\n"
        "    metrics = keras_cdseg.compute_segmentation_metrics(label.data == 1, prediction == 1, image.spacing_mm)\n"
        "    results.append((case.modality, case.case_id, metrics['dice'], metrics['assd_mm'], image, label.data, prediction))\n"
        "for modality in ('CT', 'MR'):\n"
        "    dice = [r[2] for r in results if r[0] == modality]\n"
        "    print(f'{modality}: liver Dice {np.mean(dice):.3f} over {len(dice)} scan(s)')"
    ),
    nbf.v4.new_code_cell(
        "fig, axes = plt.subplots(1, 2, figsize=(8, 4))\n"
        "for ax, modality in zip(axes, ('CT', 'MR')):\n"
        "    _, case_id, dice, _, image, label, prediction = next(r for r in results if r[0] == modality)\n"
        "    k = int(np.argmax((label == 1).sum(axis=(0, 1))))\n"
        "    ax.imshow(image.data[:, :, k].T, cmap='gray', origin='lower')\n"
        "    ax.contour((label[:, :, k] == 1).T, levels=[0.5], colors='lime', origin='lower')\n"
        "    ax.contour((prediction[:, :, k] == 1).T, levels=[0.5], colors='red', origin='lower')\n"
        "    ax.set_title(f'{modality} {case_id}: Dice {dice:.2f}'); ax.axis('off')\n"
        "plt.show()"
    ),
]
notebook = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
path = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.ipynb"
nbf.write(notebook, path)
print("wrote", path)
