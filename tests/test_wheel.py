"""Issue 18, item 5: the built wheel carries the bundled model, and `cdseg predict` from a new virtual
environment (the package installed from that wheel, not the checkout) uses it with no --model.

The new environment sees the test environment's dependencies through a plain `.pth` path line (TensorFlow
is not downloaded again); a `.pth` line does not run the checkout's editable-install hook, and the new
environment's own site-packages come first, so `keras_cdseg` is imported from the wheel (asserted).
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CT = ROOT / ".." / "shared" / "data" / "real" / "ct_abdomen_3mm.nii.gz"
MAX_BUNDLE_BYTES = 20 * 10**6
# Local artefacts of the checkout's top level (builds, exports, runs, datasets) stay out of the copy.
TOP_LEVEL_SKIPPED = {".git", "build", "dist", "keras_cdseg.egg-info", ".pytest_cache", "saved_models", "runs",
                     "demo_run", "data"}  # fmt: skip


def _skipped(directory, names):
    skipped = {n for n in names if n == "__pycache__"}
    return skipped | (TOP_LEVEL_SKIPPED & set(names) if Path(directory) == ROOT else set())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a clean copy of the checkout (no stale build/ folder can leak into it)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_skipped)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          str(source), "-w", str(work / "dist")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (path,) = (work / "dist").glob("keras_cdseg-*.whl")
    return path


@pytest.fixture(scope="module")
def bundle_record():
    return json.loads((ROOT / "keras_cdseg" / "pretrained" / "bundle.json").read_text())


def test_wheel_carries_the_bundled_model_within_20_mb(wheel, bundle_record):
    import keras_cdseg

    assert wheel.name.startswith(f"keras_cdseg-{keras_cdseg.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    prefix = "keras_cdseg/pretrained/"
    for name in ["bundle.json", "MODEL_CARD.md"] + [f"model/{f}" for f in bundle_record["files"]]:
        assert prefix + name in sizes, f"{prefix + name} missing from {wheel.name}"
    bundled = sum(size for name, size in sizes.items() if name.startswith(prefix))
    assert bundled <= MAX_BUNDLE_BYTES, f"bundled model is {bundled / 1e6:.1f} MB"
    assert "keras_cdseg/_moved.py" not in sizes and "cdseg/cmd_models.py" in sizes


@pytest.mark.slow
def test_predict_from_the_installed_wheel_uses_the_bundled_model(wheel, bundle_record, tmp_path):
    if not REAL_CT.is_file():
        pytest.skip(f"real CT not found at {REAL_CT.resolve()} (../shared/data/real beside the checkout)")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    here = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(target) / "test_environment.pth").write_text("".join(f"{path}\n" for path in here))
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", target,
                          str(wheel)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    _write_console_script(env_dir, python)

    work = tmp_path / "elsewhere"  # no saved_models/ here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CDSEG_MODEL", "PYTHONPATH")}
    where = subprocess.run([str(python), "-c", "import keras_cdseg; print(keras_cdseg.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(where).resolve().is_relative_to(env_dir.resolve()), where

    info = subprocess.run([str(env_dir / "bin" / "cdseg"), "info"], cwd=work, env=env, capture_output=True, text=True)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["bundled_model"]["sha256"] == bundle_record["sha256"]

    result = subprocess.run([str(env_dir / "bin" / "cdseg"), "predict", str(REAL_CT.resolve()), "-o", "seg.nii.gz"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"Model: bundled model {bundle_record['name']} v{bundle_record['version']}" in result.stdout
    assert result.stderr == ""  # only our lines: no TensorFlow or LiteRT log
    source = nib.load(str(REAL_CT))
    seg = nib.load(str(work / "seg.nii.gz"))
    assert seg.shape == source.shape and np.allclose(seg.affine, source.affine)
    assert set(np.unique(np.asarray(seg.dataobj))) <= set(bundle_record["labels"].values())
    stats = json.loads((work / "seg.json").read_text())
    (case,) = stats["cases"].values()
    assert case["model_source"]["source"] == "bundled" and case["model_source"]["sha256"] == bundle_record["sha256"]
    assert Path(case["model_source"]["path"]).resolve().is_relative_to(env_dir.resolve())
    if bundle_record.get("tflite"):  # run on LiteRT, as `cdseg predict` does by default
        assert case["model_source"]["path"].endswith(bundle_record["tflite"]) and case["model"].startswith("tflite ")


def _write_console_script(env_dir, python):
    """`pip install --target` writes no scripts: the `cdseg` entry point as pip would have written it."""
    script = env_dir / "bin" / "cdseg"
    script.write_text(f"#!{python}\nimport sys\nfrom cdseg.main import cli\nsys.exit(cli())\n")
    script.chmod(0o755)
