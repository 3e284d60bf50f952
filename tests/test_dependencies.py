"""Every import is a declared dependency: FawltyDeps compares the imports of the package, CLI, tests,
benchmarks, scripts and notebooks with setup.cfg ([tool.fawltydeps] in pyproject.toml says what and why).
In CI this runs inside the fresh virtual environment that .ci/run builds, so an import that only resolves
because a package was installed by hand fails here."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_undeclared_or_unused_dependencies():
    fawltydeps = shutil.which("fawltydeps", path=str(Path(sys.executable).parent)) or shutil.which("fawltydeps")
    if fawltydeps is None:
        pytest.fail("fawltydeps is not installed; it is in the `test` extra: pip install -e '.[test]'")
    result = subprocess.run([fawltydeps, "--check", "--detailed", "--pyenv", sys.prefix], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command_in_a_fresh_virtual_environment():
    readme = (ROOT / "README.md").read_text()
    command = 'pip install -e ".[test]" && python -m pytest -q'
    assert f"```bash\n{command}\n```" in readme
    script = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in script.splitlines()]
    assert command in lines
    assert lines.index(command) > lines.index('python3 -m venv "$work/venv"')
