"""setup.cfg lists packages explicitly (cli/ is installed as `cdseg`); none may be forgotten."""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed_in_setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "keras_cdseg").rglob("__init__.py")}
    assert found - listed == set(), f"add to setup.cfg [options] packages: {sorted(found - listed)}"
    assert "cdseg" in listed


def test_no_dependency_on_tensorflow_addons():
    text = (ROOT / "setup.cfg").read_text()
    assert "tensorflow-addons" not in text and "tensorflow_addons" not in text
    sources = [p for p in (ROOT / "keras_cdseg").rglob("*.py")] + [p for p in (ROOT / "cli").rglob("*.py")]
    assert not [p for p in sources if "tensorflow_addons" in p.read_text()]


def test_public_names_resolve_without_importing_tensorflow_for_numpy_parts():
    import subprocess
    import sys

    code = (
        "import sys, keras_cdseg; keras_cdseg.compute_segmentation_metrics; keras_cdseg.keep_largest_component;"
        "print('tensorflow' in sys.modules); [getattr(keras_cdseg, n) for n in keras_cdseg.__all__]; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "ok"], out.stderr


def test_inference_and_deploy_never_import_the_training_package():
    import subprocess
    import sys

    sources = [*(ROOT / "keras_cdseg" / "inference").rglob("*.py"), *(ROOT / "keras_cdseg" / "deploy").rglob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in sources if "keras_cdseg.training" in p.read_text()]
    assert offenders == []
    modules = [
        "keras_cdseg.inference." + p.stem for p in (ROOT / "keras_cdseg" / "inference").glob("*.py")
    ] + ["keras_cdseg.deploy." + p.stem for p in (ROOT / "keras_cdseg" / "deploy").glob("*.py")]
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(modules)!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('keras_cdseg.training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]"], out.stdout


OLD_PATHS = {
    "keras_cdseg.export": ("keras_cdseg.deploy.export", "export_model"),
    "keras_cdseg.predictors": ("keras_cdseg.inference.predictors", "load_predictor"),
    "keras_cdseg.serving_client": ("keras_cdseg.deploy.serving_client", "build_predict_request"),
    "keras_cdseg.postprocessing": ("keras_cdseg.inference.postprocessing", "keep_largest_component"),
    "keras_cdseg.data.synthetic": ("keras_cdseg.data.phantoms.synthetic", "write_synthetic_dataset"),
    "keras_cdseg.training.run_dir": ("keras_cdseg.run_dir", "load_run"),
}


def test_old_module_paths_still_work_for_one_release_and_warn():
    import importlib
    import subprocess
    import sys

    code = (
        "import importlib, warnings\n"
        f"for old, (new, name) in {OLD_PATHS!r}.items():\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    same = getattr(module, name) is getattr(importlib.import_module(new), name)\n"
        "    warned = any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)\n"
        "    print(old, same, warned)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [f"{old} True True" for old in OLD_PATHS]
    # The volume functions stay importable from the package, as before.
    assert importlib.import_module("keras_cdseg.inference").predict_volume.__module__ == "keras_cdseg.inference.volume"
