"""Every `cdseg` command the quick start and the README's first screen show parses: options exist, values fit."""

import re
import shlex
from pathlib import Path

import click
import pytest

from cdseg.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands(path):
    text = (ROOT / path).read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("cdseg "):
                yield line


@pytest.mark.parametrize("command", [*_commands("docs/quickstart.md"), *_commands("README.md")])
def test_documented_command_parses(command):
    name, *args = shlex.split(command)[1:]
    sub = cli.get_command(None, name)
    assert sub is not None, f"no command {name!r}"
    try:
        sub.make_context(name, args)
    except click.UsageError as e:  # e.g. "No such option" or a value of the wrong kind
        pytest.fail(f"{command}: {e.format_message()}")
