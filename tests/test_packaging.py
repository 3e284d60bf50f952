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


def test_inference_never_imports_deploy():
    """The model card lives below both packages (keras_cdseg.model_card): importing inference loads no deploy module."""
    import subprocess
    import sys

    imports = ("from keras_cdseg.deploy", "import keras_cdseg.deploy", "from keras_cdseg import deploy")
    sources = [str(p.relative_to(ROOT)) for p in (ROOT / "keras_cdseg" / "inference").rglob("*.py")
               if any(statement in p.read_text() for statement in imports)]  # fmt: skip
    assert sources == [], f"inference modules importing keras_cdseg.deploy: {sources}"
    modules = ["keras_cdseg.inference." + ".".join(p.relative_to(ROOT / "keras_cdseg" / "inference").with_suffix("").parts)
               for p in (ROOT / "keras_cdseg" / "inference").rglob("*.py") if p.name != "__init__.py"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        "import keras_cdseg.inference\n"
        f"for name in {sorted(modules)!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('keras_cdseg.deploy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]"], out.stdout


def test_no_forwarding_modules_of_0_1():
    """0.1's module paths were never released: no alias modules remain."""
    for old in ("_moved", "export", "predictors", "postprocessing", "serving_client", "data/synthetic", "training/run_dir"):
        assert not (ROOT / "keras_cdseg" / f"{old}.py").exists(), old


def test_version_is_stated_once_and_the_same_everywhere():
    import configparser
    import re

    import keras_cdseg

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    assert parser["metadata"]["version"] == keras_cdseg.__version__ == "0.2.0"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(keras_cdseg.__version__)}\b", changelog, re.MULTILINE)
