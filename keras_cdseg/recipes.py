"""Named training recipes: whole sets of data, model and training settings, like nnU-Net's plans.

A recipe fills the settings a user did not give: `cdseg train --data abdomen/ --recipe real-cpu --steps 2000`
takes every value of "real-cpu" except the steps. Precedence: built-in defaults < recipe < `--config` file <
command-line flags. The run's config.json records the resolved values and the recipe's name.

- "paper": the paper's settings (256², the `paper` preset, cross-entropy, constant lr 1e-3, 100 000 steps),
  the defaults of the config classes; meant for GPUs.
- "real-cpu": real CT + MR on a 2-core CPU in about an hour: a small U-Net at 128² and 2.5 mm, cross-entropy +
  Dice, polynomial learning-rate decay, organ-balanced slice sampling and the "real" augmentation preset
  (other windows, intensity compression of full-range HU CT, organ contrast, bias field, noise). docs/training.md,
  "Recipes", has the measurements behind each choice.
"""

from keras_cdseg.errors import InputError

RECIPES = {
    "paper": {
        "description": "The paper's settings: 256 px at 1.5 mm, paper preset, CE + 0.001 adversarial, "
        "Adam 1e-3 constant, 100 000 steps (GPU).",
        "data": {},
        "model": {},
        "train": {},
    },
    "real-cpu": {
        "description": "Real CT + MR on a 2-core CPU in about an hour: U-Net 16 filters, depth 4, 128 px at "
        "2.5 mm, T = 1, CE + Dice, poly lr decay, organ-balanced sampling, 'real' augmentation, 5000 steps.",
        "data": {"image_size": 128, "target_spacing_mm": 2.5, "context": 1},
        "model": {"preset": "unet", "base_filters": 16, "depth": 4, "norm": "batch", "norm_order": "pre"},
        "train": {
            "steps": 5000,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "d_learning_rate": 1e-3,
            "adversarial_weight": 1e-3,
            "loss": "ce_dice",
            "lr_schedule": "poly",
            "sampling": "organs",
            "augment": True,
            "augmentation": "real",
            "val_every": 500,
            "checkpoint_every": 250,
            "val_max_cases": 3,
        },
    },
}


def recipe_names():
    return sorted(RECIPES)


def recipe_values(name):
    """`{"data": {...}, "model": {...}, "train": {...}}`: the recipe's settings as config-field dicts (copies)."""
    if name not in RECIPES:
        raise InputError("--recipe", f"unknown recipe {name!r}; known recipes: {', '.join(recipe_names())}")
    recipe = RECIPES[name]
    return {section: dict(recipe[section]) for section in ("data", "model", "train")}


def describe_recipe(name):
    if name not in RECIPES:
        raise InputError("--recipe", f"unknown recipe {name!r}; known recipes: {', '.join(recipe_names())}")
    return RECIPES[name]["description"]
