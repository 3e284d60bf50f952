"""`cdseg`: one Click group, one thin command per module.

Command modules import only Click at module level; TensorFlow and the library are imported inside the
command functions so `cdseg --help` stays instant and refusals that need no model come before TensorFlow.
The installed script quiets TensorFlow's C++ log lines first (`cdseg.native_logs`).
"""

import importlib
import sys
from pathlib import Path

import click



def _command_modules():
    """Command name -> module: every `cdseg/cmd_<name>.py` defines a Click command `<name>`."""
    folder = Path(__file__).parent
    return {p.stem[4:].replace("_", "-"): p.stem for p in sorted(folder.glob("cmd_*.py"))}


class LazyGroup(click.Group):
    """A group whose commands are found by file name and imported on first use."""

    def list_commands(self, ctx):
        return sorted(_command_modules())

    def get_command(self, ctx, name):
        module = _command_modules().get(name)
        if module is None:
            return None
        return getattr(importlib.import_module(f"cdseg.{module}"), module[4:])

    def __call__(self, *args, **kwargs):
        # The installed script calls the group (`cdseg.main:cli`); Click's test runner calls `main()` instead,
        # so tests in one process never get their stderr redirected or their environment changed.
        from cdseg import native_logs

        native_logs.install()  # before any command can import TensorFlow
        return super().__call__(*args, **kwargs)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-cdseg")
def cli():
    """Cross-domain CT/MR organ segmentation (Keras 3).

    One network segments CT and MR without being told which modality it sees.
    """


def main():
    sys.exit(cli())


if __name__ == "__main__":
    main()
