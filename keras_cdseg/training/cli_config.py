"""Turning `cdseg train` options into a `RunConfig`: defaults < --recipe < --config file < command-line flags."""

import dataclasses
import json
from pathlib import Path

from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig, from_dict, load_json
from keras_cdseg.errors import InputError
from keras_cdseg.recipes import recipe_values

# option name (as the Click parameter) -> (config section, field)
OPTION_FIELDS = {
    "image_size": ("data", "image_size"),
    "target_spacing": ("data", "target_spacing_mm"),
    "context": ("data", "context"),
    "intensity": ("data", "intensity"),
    "preset": ("model", "preset"),
    "base_filters": ("model", "base_filters"),
    "depth": ("model", "depth"),
    "norm": ("model", "norm"),
    "norm_order": ("model", "norm_order"),
    "architecture": ("model", "architecture"),
    **{name: ("train", name) for name in (f.name for f in dataclasses.fields(TrainConfig))},
}
RESUMABLE_OPTIONS = {"steps"}


def read_config_file(path):
    """A run config from JSON (a run's own config.json works) or YAML, as a `RunConfig.from_dict` dict."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise InputError(path, f"cannot read YAML ({str(e).splitlines()[0]})") from None
    else:
        values = load_json(path)
    if not isinstance(values, dict):
        raise InputError(path, "a config file must hold a mapping")
    return values.get("run", values)  # accept a run directory's config.json as it is


def build_run_config(data_dir=None, config_file=None, cache_dir=None, recipe=None, **options):
    """`RunConfig` from a recipe, overridden by an optional config file, overridden by the non-None options.

    A config file may name its own recipe (`"recipe": "real-cpu"`); `recipe` given here wins.
    """
    values = read_config_file(config_file) if config_file else {}
    recipe = recipe or values.get("recipe")
    base = recipe_values(recipe) if recipe else {}
    sections = {name: {**base.get(name, {}), **values.get(name, {})} for name in ("data", "model", "train")}
    for option, value in options.items():
        if value is None:
            continue
        if option not in OPTION_FIELDS:
            raise InputError(f"--{option.replace('_', '-')}", "unknown option")
        section, field = OPTION_FIELDS[option]
        sections[section][field] = value
    data_dir = data_dir or values.get("data_dir")
    if not data_dir:
        raise InputError("--data", "a dataset directory is required (or data_dir in --config)")
    source = config_file or "command line"
    return RunConfig(
        recipe=recipe,
        data_dir=str(Path(data_dir).resolve()),
        cache_dir=str(Path(cache_dir).resolve()) if cache_dir else values.get("cache_dir"),
        data=from_dict(DataConfig, sections["data"], source),
        model=from_dict(ModelConfig, sections["model"], source),
        train=from_dict(TrainConfig, sections["train"], source),
    )


def resumed_run_config(run_config, **options):
    """The run's own config, with only the options allowed on resume (the total `steps`) changed."""
    changed = {k: v for k, v in options.items() if v is not None}
    refused = sorted(set(changed) - RESUMABLE_OPTIONS)
    if refused:
        names = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise InputError(names, "cannot be changed when resuming (the run's config.json fixes them); only --steps can")
    if "steps" in changed:
        run_config = dataclasses.replace(run_config, train=dataclasses.replace(run_config.train, steps=changed["steps"]))
    return run_config


def describe(run_config):
    return json.dumps(run_config.to_dict(), indent=2)
