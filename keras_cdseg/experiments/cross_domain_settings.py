"""What the cross-domain benchmark trains: its variants and the settings every run shares.

Every variant is one training recipe's run with a few fields changed, and all get the same number of steps,
so a difference between two rows is the change, not the budget:

    method          pre-norm BN + conditional adversarial loss (CAN), one network on CT + MR (the paper)
    no_adversarial  the method without CAN (adversarial_weight 0)
    post_norm       post-norm BN + CAN
    ct_only         one network trained on CT only  } separate per-modality models; each is evaluated on
    mr_only         one network trained on MR only  } both modalities, which gives the zero-shot rows
    cond_dcn        Cond-DCN (blocks conditioned on a modality classifier; the one run given modality labels),
                    only when asked for (`--variants`)

The recipe comes from `keras_cdseg.recipes` through `build_run_config` (defaults < recipe < config file).
"""

import dataclasses

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.variants import Variant

METHOD = "method"
DEFAULT_RECIPE = "real-cpu"
# 4 folds x 5 variants = 20 trainings in about 8 hours here: "real-cpu" trains 5000 steps in about an hour
# (0.72 s per step), so 1800 steps are ~22 min of training plus ~1-2 min of evaluation per run, ~7.7 h in all.
DEFAULT_STEPS = 1800
DEFAULT_FOLDS = 4

_PRE_BN = {"norm": "batch", "norm_order": "pre", "architecture": "dcn"}
VARIANTS = (
    Variant(METHOD, "One network: pre-norm BN + CAN (the method)", (), model=_PRE_BN),
    Variant("no_adversarial", "One network: pre-norm BN, no CAN", (), model=_PRE_BN,
            train={"adversarial_weight": 0.0}),
    Variant("post_norm", "One network: post-norm BN + CAN", (), model={**_PRE_BN, "norm_order": "post"}),
    Variant("cond_dcn", "Cond-DCN (given modality labels in training)", (),
            model={**_PRE_BN, "architecture": "conditional"}),
    Variant("ct_only", "CT-only model", (), model=_PRE_BN, train={"modalities": ("CT",)}),
    Variant("mr_only", "MR-only model", (), model=_PRE_BN, train={"modalities": ("MR",)}),
)  # fmt: skip
VARIANTS_BY_KEY = {variant.key: variant for variant in VARIANTS}
DEFAULT_VARIANTS = ("method", "no_adversarial", "post_norm", "ct_only", "mr_only")
# The modality each single-modality model was trained on: its "separate models" row; the other is zero-shot.
TRAINED_ON = {"ct_only": "CT", "mr_only": "MR"}


def select_variants(keys=None):
    """The variants to run, in `VARIANTS` order; the method is always included (everything is compared to it).

    Raises:
        InputError: an unknown variant key.
    """
    keys = set(keys or DEFAULT_VARIANTS)
    unknown = sorted(keys - set(VARIANTS_BY_KEY))
    if unknown:
        raise InputError("--variants", f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS_BY_KEY)}")
    keys.add(METHOD)
    return [variant for variant in VARIANTS if variant.key in keys]


@dataclasses.dataclass(frozen=True)
class CrossDomainSettings:
    """Settings shared by every run of the benchmark.

    Args:
        recipe: str. Training recipe name (`keras_cdseg.recipes`). Defaults to "real-cpu".
        steps: int. Training steps of every run (the same budget for every variant). Defaults to 1800.
        num_folds: int. K of the K-fold cross-validation. Defaults to 4.
        seed: int. Fold split, bootstrap resampling and, unless `train_seed` is given, the training seed of every
            run. Defaults to 0.
        train_seed: int or None. Training seed of every run (weights, batches, augmentation), apart from the
            folds: a repeat with another `train_seed` trains on the same folds, so its results pair case by case
            with the first (`keras_cdseg.experiments.seed_repeats`). Defaults to None (`seed`).
        quality_calibration: bool. Calibrate each run's per-scan quality estimate at the end of training
            (the benchmark never uses it). Defaults to False.
        config_file: str or None. JSON/YAML run config whose values override the recipe's.
        num_resamples: int. Bootstrap resamples of every confidence interval. Defaults to 2000.
    """

    recipe: str = DEFAULT_RECIPE
    steps: int = DEFAULT_STEPS
    num_folds: int = DEFAULT_FOLDS
    seed: int = 0
    train_seed: int | None = None
    quality_calibration: bool = False
    config_file: str | None = None
    num_resamples: int = 2000

    def __post_init__(self):
        for name in ("steps", "num_resamples"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise InputError(f"--{name.replace('_', '-')}", f"must be a positive int. Received: {getattr(self, name)!r}")
        if not (isinstance(self.num_folds, int) and self.num_folds >= 2):
            raise InputError("--folds", f"cross-validation needs at least 2 folds. Received: {self.num_folds!r}")

    def recorded(self):
        """The settings a resumed benchmark must share (the config file is recorded through its values)."""
        values = dataclasses.asdict(self)
        values.pop("config_file")
        if self.train_seed in (None, self.seed):
            values.pop("train_seed")  # the same runs as without it; directories made before it stay resumable
        return values

    @property
    def training_seed(self):
        return self.seed if self.train_seed is None else self.train_seed

    def base_run_config(self, data_dir, cache_dir):
        """The recipe's `RunConfig` (+ config file) with the benchmark's steps, seed and calibration."""
        base = recipe_run_config(self.recipe, data_dir, cache_dir, self.config_file)
        train = dataclasses.replace(
            base.train,
            steps=self.steps,
            seed=self.training_seed,
            val_every=min(base.train.val_every, self.steps),
            checkpoint_every=min(base.train.checkpoint_every, self.steps),
            quality_calibration=self.quality_calibration,
        )
        return dataclasses.replace(base, train=train)

    def run_config(self, variant, fold_data_dir, cache_dir):
        """The `RunConfig` of one (fold, variant) run: the base config with the variant's fields changed."""
        base = self.base_run_config(fold_data_dir, cache_dir)
        return dataclasses.replace(
            base,
            data=dataclasses.replace(base.data, **variant.data),
            model=dataclasses.replace(base.model, **variant.model),
            train=dataclasses.replace(base.train, **variant.train),
        )


def recipe_run_config(recipe, data_dir, cache_dir, config_file=None):
    """`RunConfig` of a named recipe (`keras_cdseg.recipes`) for `data_dir`, overridden by an optional config file.

    Raises:
        InputError: an unknown recipe, or an unreadable or invalid config file.
    """
    from keras_cdseg.training.cli_config import build_run_config

    return build_run_config(data_dir, config_file=config_file, cache_dir=cache_dir, recipe=recipe)
