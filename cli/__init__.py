"""The `cdseg` command-line interface (installed from the repository's `cli/` folder)."""
