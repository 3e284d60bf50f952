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
