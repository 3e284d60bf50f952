"""The runs of the paper's ablation (Tables 2, 4, 5) and the training settings they share.

Every variant is the reference model — pre-norm BatchNorm blocks, conditional adversarial loss (CAN), T = 1
context — with a few fields changed, so a paired difference against the reference isolates one change:

    Table 2  post_bn_nocan, pre_bn_nocan, post_bn_can, pre_in_can, pre_bn_can (reference), att_dcn, cond_dcn
    Table 4  ct_only, mr_only (trained on one modality, evaluated on it) vs pre_bn_can
    Table 5  context T = 0..3 for BN and IN (T = 1 is pre_bn_can / pre_in_can)

The baselines keep the reference's norm, context and CAN and change only the architecture: Att-DCN adds
attention gates on the skips; Cond-DCN conditions every block on its own modality classifier, the one
variant trained with modality labels (from dataset metadata).
"""

import dataclasses

from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig, to_dict
from keras_cdseg.errors import InputError

REFERENCE = "pre_bn_can"
TABLES = (2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the ablation.

    Args:
        key: str. Directory name and id, e.g. "pre_bn_can".
        label: str. The paper's row name, e.g. "Pre-BN + CAN".
        tables: tuple of int. Tables the run appears in (Table 3, sparsity, reports every Table 2 row).
        model: dict. `ModelConfig` fields changed from the shared settings.
        train: dict. `TrainConfig` fields changed.
        data: dict. `DataConfig` fields changed.
        eval_modality: str or None. Evaluated only on this modality (single-modality models); None: all.
    """

    key: str
    label: str
    tables: tuple
    model: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)
    eval_modality: str | None = None

    def missing_fields(self):
        """Config fields this variant needs that this version of `keras_cdseg.config` does not have."""
        missing = []
        for cls, values in ((ModelConfig, self.model), (TrainConfig, self.train), (DataConfig, self.data)):
            names = {f.name for f in dataclasses.fields(cls)}
            missing += [f"{cls.__name__}.{key}" for key in values if key not in names]
        return missing


def _norm(norm, order, can=True, **extra):
    model = {"norm": norm, "norm_order": order, **extra.pop("model", {})}
    return {"model": model, "train": {} if can else {"adversarial_weight": 0.0}, **extra}


VARIANTS = (
    Variant("post_bn_nocan", "Post-BN w/o CAN", (2, 3), **_norm("batch", "post", can=False)),
    Variant("pre_bn_nocan", "Pre-BN w/o CAN", (2, 3), **_norm("batch", "pre", can=False)),
    Variant("post_bn_can", "Post-BN + CAN", (2, 3), **_norm("batch", "post")),
    Variant("pre_in_can", "Pre-IN + CAN", (2, 3, 5), **_norm("instance", "pre")),
    Variant(REFERENCE, "Pre-BN + CAN", (2, 3, 4, 5), **_norm("batch", "pre")),
    Variant("att_dcn", "Att-DCN", (2, 3), **_norm("batch", "pre", model={"architecture": "attention"})),
    Variant("cond_dcn", "Cond-DCN", (2, 3), **_norm("batch", "pre", model={"architecture": "conditional"})),
    Variant("ct_only", "CT only", (4,), model={"norm": "batch", "norm_order": "pre"}, train={"modalities": ("CT",)},
            eval_modality="CT"),
    Variant("mr_only", "MR only", (4,), model={"norm": "batch", "norm_order": "pre"}, train={"modalities": ("MR",)},
            eval_modality="MR"),
) + tuple(
    Variant(f"ctx{t}_{short}", f"Pre-{short.upper()} + CAN, T={t}", (5,), data={"context": t}, **_norm(norm, "pre"))
    for short, norm in (("bn", "batch"), ("in", "instance"))
    for t in (0, 2, 3)
)
VARIANTS_BY_KEY = {variant.key: variant for variant in VARIANTS}

# Table 5 rows (context T, norm) -> variant key; T = 1 reuses the Table 2 runs.
CONTEXT_ROWS = {(t, norm): (f"ctx{t}_{norm}" if t != 1 else {"bn": REFERENCE, "in": "pre_in_can"}[norm])
                for norm in ("bn", "in") for t in (0, 1, 2, 3)}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class AblationSettings:
    """Training settings shared by every run (the variants change only their own fields).

    Args:
        image_size, target_spacing_mm: the prepared input grid.
        preset, base_filters, depth: the generator's layout (`ModelConfig`).
        steps, batch_size, learning_rate: optimisation.
        val_every: int or None. Steps between validations (best-generator selection); None: steps // 2.
        val_max_cases: int. Validation cases per modality.
        foreground_weight: float. Sampling weight of liver-bearing slices.
        augment: bool. Random rotation/scale and intensity jitter.
    """

    image_size: int = 64
    target_spacing_mm: float = 6.0
    preset: str = "unet"
    base_filters: int = 16
    depth: int = 3
    steps: int = 600
    batch_size: int = 8
    learning_rate: float = 1e-3
    val_every: int | None = None
    val_max_cases: int = 2
    foreground_weight: float = 3.0
    augment: bool = True

    def __post_init__(self):
        if self.image_size % (2**self.depth):
            raise InputError("--size", f"image size {self.image_size} must be divisible by 2**depth = {2**self.depth}")

    def to_dict(self):
        return to_dict(self)

    def run_config(self, variant, seed, data_dir, cache_dir):
        """The `RunConfig` of one (variant, seed) run."""
        val_every = self.val_every or max(1, self.steps // 2)
        data = DataConfig(image_size=self.image_size, target_spacing_mm=self.target_spacing_mm, **variant.data)
        model = ModelConfig(preset=self.preset, base_filters=self.base_filters, depth=self.depth, **variant.model)
        train = TrainConfig(
            **{
                "steps": self.steps,
                "batch_size": self.batch_size,
                "learning_rate": self.learning_rate,
                "val_every": min(val_every, self.steps),
                "checkpoint_every": min(val_every, self.steps),
                "val_max_cases": self.val_max_cases,
                "foreground_weight": self.foreground_weight,
                "augment": self.augment,
                "seed": int(seed),
                # The ablation tables never predict with these runs: no per-scan quality calibration.
                "quality_calibration": False,
                **variant.train,
            }
        )
        return RunConfig(data_dir=str(data_dir), data=data, model=model, train=train,
                         cache_dir=str(cache_dir) if cache_dir else None)  # fmt: skip


def select_variants(tables=TABLES, only=None):
    """The variants needed for `tables` (ints among 2, 3, 4, 5), optionally restricted to the keys in `only`.

    The reference (Pre-BN + CAN) is always included: every table compares against it. Order follows
    `VARIANTS` so runs of one seed happen in a fixed order.

    Raises:
        InputError: an unknown table number or variant key.
    """
    tables = tuple(int(t) for t in tables)
    unknown_tables = sorted(set(tables) - set(TABLES))
    if unknown_tables:
        raise InputError("--tables", f"unknown table(s) {unknown_tables}; choose among {list(TABLES)}")
    if only:
        unknown = sorted(set(only) - set(VARIANTS_BY_KEY))
        if unknown:
            raise InputError("--only", f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS_BY_KEY)}")
        wanted = set(only) | {REFERENCE}
        return [v for v in VARIANTS if v.key in wanted]
    wanted = {v.key for v in VARIANTS if set(v.tables) & set(tables)} | {REFERENCE}
    return [v for v in VARIANTS if v.key in wanted]
