"""Named recipes: precedence (defaults < recipe < config file < flags), recorded in the run config."""

import json

import pytest

from keras_cdseg.config import RunConfig, TrainConfig
from keras_cdseg.errors import InputError
from keras_cdseg.recipes import RECIPES, describe_recipe, recipe_names, recipe_values
from keras_cdseg.training.cli_config import build_run_config


def test_recipes_are_valid_configs():
    assert {"paper", "real-cpu"} <= set(recipe_names())
    for name in recipe_names():
        run = build_run_config("data", recipe=name)
        assert run.recipe == name
        assert describe_recipe(name)


def test_paper_recipe_is_the_defaults():
    assert build_run_config("data", recipe="paper").to_dict()["train"] == build_run_config("data").to_dict()["train"]


def test_real_cpu_recipe_values_and_precedence(tmp_path):
    run = build_run_config("data", recipe="real-cpu")
    assert (run.data.image_size, run.data.target_spacing_mm) == (128, 2.5)
    assert (run.model.preset, run.model.norm_order) == ("unet", "pre")
    assert (run.train.loss, run.train.lr_schedule, run.train.sampling, run.train.augmentation) == (
        "ce_dice", "poly", "organs", "real")  # fmt: skip
    assert run.train.adversarial_weight == 1e-3  # the method, not a baseline
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"recipe": "real-cpu", "train": {"steps": 300, "loss": "ce"}}))
    run = build_run_config("data", config_file=str(config_file), batch_size=4)
    assert run.recipe == "real-cpu"
    assert (run.train.steps, run.train.loss, run.train.batch_size, run.train.lr_schedule) == (300, "ce", 4, "poly")
    # The intensity rule: percentiles unless a config file or --intensity says otherwise.
    assert run.data.intensity == "percentiles"
    config_file.write_text(json.dumps({"recipe": "real-cpu", "data": {"intensity": "ranks"}}))
    assert build_run_config("data", config_file=str(config_file)).data.intensity == "ranks"
    assert build_run_config("data", config_file=str(config_file), intensity="percentiles").data.intensity == "percentiles"
    # A value the config class rejects names the file it came from.
    config_file.write_text(json.dumps({"data": {"intensity": "zscore"}}))
    with pytest.raises(InputError) as error:
        build_run_config("data", config_file=str(config_file))
    assert str(error.value) == f"{config_file}: data config: intensity must be one of percentiles, ranks, landmarks. Received: 'zscore'"


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(InputError, match="known recipes: paper, real-cpu"):
        recipe_values("fast")
    with pytest.raises(InputError, match="known recipes"):
        build_run_config("data", recipe="fast")


def test_recipe_round_trips_through_config_json():
    run = build_run_config("data", recipe="real-cpu")
    again = RunConfig.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run
    assert RunConfig.from_dict({"data_dir": "d"}).recipe is None  # config.json of older runs


def test_new_train_fields_are_validated():
    for field, value in (("loss", "dice"), ("lr_schedule", "step"), ("sampling", "cases"), ("augmentation", "x")):
        with pytest.raises(InputError, match=field):
            TrainConfig(**{field: value})


def test_recipe_dicts_are_copies():
    values = recipe_values("real-cpu")
    values["train"]["steps"] = 1
    assert RECIPES["real-cpu"]["train"]["steps"] != 1
