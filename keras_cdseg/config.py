"""Frozen configuration dataclasses with JSON round-trip.

`DataConfig` fixes how a volume becomes model input (shared by training, evaluation, prediction and
exported-model clients), `ModelConfig` the network, `TrainConfig` the optimisation. The effective configs
are written next to every run and exported model so a result can be reproduced from files alone.
"""

import dataclasses
import json
from pathlib import Path

from keras_cdseg.errors import InputError


INTENSITY_RULES = ("percentiles", "ranks", "landmarks")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How a scan is turned into network input.

    Args:
        image_size: int. In-plane size (pixels) after resampling and centre pad/crop. Defaults to 256.
        target_spacing_mm: float. In-plane pixel spacing after resampling. Defaults to 1.5.
        context: int. T, the number of neighbouring slices on each side; the input has 2T+1 channels.
            Defaults to 1.
        clip_percentiles: (float, float). Per-volume intensity percentiles clipped and mapped to [0, 1],
            the same rule for CT and MR. Defaults to (0.5, 99.5).
        intensity: str. How intensities become [0, 1], the same rule for every modality:
            - "percentiles" (default): `clip_percentiles` of the volume map linearly to 0 and 1;
            - "ranks": each voxel becomes the fraction of the volume's voxels below it (the volume's own
              cumulative histogram, `preprocessing.rank_knots`). Any increasing change of the intensity
              scale leaves it unchanged, so a CT stored in a display window and the same CT in full-range
              HU map their windowed tissues alike; `clip_percentiles` is then only recorded;
            - "landmarks": those ranks mapped through one fixed reference curve
              (`preprocessing.REFERENCE_LANDMARKS`: the percentile rule's average value at each rank), so
              organs keep the contrast percentiles give them and the invariance of ranks.
    """

    image_size: int = 256
    target_spacing_mm: float = 1.5
    context: int = 1
    clip_percentiles: tuple = (0.5, 99.5)
    intensity: str = "percentiles"

    def __post_init__(self):
        _check_positive_int("image_size", self.image_size)
        if not self.target_spacing_mm > 0:
            raise InputError("data config", f"target_spacing_mm must be > 0. Received: {self.target_spacing_mm}")
        if not (isinstance(self.context, int) and 0 <= self.context <= 8):
            raise InputError("data config", f"context must be an int in [0, 8]. Received: {self.context}")
        low, high = self.clip_percentiles
        if not 0 <= low < high <= 100:
            raise InputError(
                "data config", f"clip_percentiles must satisfy 0 <= low < high <= 100. Received: {self.clip_percentiles}"
            )
        object.__setattr__(self, "clip_percentiles", (float(low), float(high)))
        if self.intensity not in INTENSITY_RULES:
            raise InputError("data config", f"intensity must be one of {', '.join(INTENSITY_RULES)}. Received: {self.intensity!r}")

    @property
    def num_channels(self):
        return 2 * self.context + 1


ARCHITECTURES = ("dcn", "attention", "conditional")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The generator (and discriminator) architecture.

    Args:
        preset: str. "paper" (the authors' reference layout) or "unet" (classic U-Net). Defaults to "paper".
        num_classes: int. Output classes including background. Defaults to 2.
        base_filters: int or None. Filters of the first level; None takes the preset's. Defaults to None.
        depth: int or None. Number of down-sampling levels; None takes the preset's. Defaults to None.
        norm: str or None. "batch", "instance" or None. Defaults to "batch".
        norm_order: str. "pre" (norm → conv → PReLU, the paper) or "post" (conv → norm → PReLU).
            Defaults to "pre".
        architecture: str. "dcn" (the paper's network), or a baseline of the paper's Table 2:
            "attention" (Att-DCN: attention gates on the skips) or "conditional" (Cond-DCN: an auxiliary
            modality classifier conditions every block; the only variant trained with modality labels).
            Defaults to "dcn".
    """

    preset: str = "paper"
    num_classes: int = 2
    base_filters: int | None = None
    depth: int | None = None
    norm: str | None = "batch"
    norm_order: str = "pre"
    architecture: str = "dcn"

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise InputError(
                "model config", f"architecture must be one of {ARCHITECTURES}. Received: {self.architecture!r}"
            )
        if self.preset not in ("paper", "unet"):
            raise InputError("model config", f"preset must be 'paper' or 'unet'. Received: {self.preset!r}")
        if self.norm in ("none", "None", ""):
            object.__setattr__(self, "norm", None)
        if self.norm not in ("batch", "instance", None):
            raise InputError("model config", f"norm must be 'batch', 'instance' or None. Received: {self.norm!r}")
        if self.norm_order not in ("pre", "post"):
            raise InputError("model config", f"norm_order must be 'pre' or 'post'. Received: {self.norm_order!r}")
        if not (isinstance(self.num_classes, int) and self.num_classes >= 2):
            raise InputError("model config", f"num_classes must be an int >= 2. Received: {self.num_classes}")
        if self.base_filters is not None:
            _check_positive_int("base_filters", self.base_filters)
        if self.depth is not None:
            _check_positive_int("depth", self.depth)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, schedule, scale and reliability settings of `cdseg train`.

    Args:
        steps: int. Total training iterations (the paper: 100000). Defaults to 100000.
        batch_size: int. Slices per replica per step; the global batch is `batch_size × replicas`.
            Defaults to 6.
        learning_rate: float. Adam learning rate of the generator. Defaults to 1e-3.
        d_learning_rate: float. Adam learning rate of the discriminator. Defaults to 1e-3.
        adversarial_weight: float. Weight of the adversarial term; 0 trains without CAN. Defaults to 1e-3.
        seed: int. Fixes initial weights, case split, data order and augmentation. Defaults to 0.
        augment: bool. Random rotation/scale and intensity jitter (no flips). Defaults to True.
        foreground_weight: float. Sampling weight of slices with foreground relative to those without.
            Defaults to 1.
        val_every: int. Steps between validations (one Keras "epoch"). Defaults to 1000.
        val_fraction: float. Share of each modality's training cases held out for validation when the
            dataset has no validation list. Defaults to 0.2.
        val_max_cases: int. At most this many validation cases per modality get volume metrics. Defaults to 4.
        checkpoint_every: int. Steps between checkpoints. Defaults to 1000.
        keep_checkpoints: int. Checkpoints kept on disk. Defaults to 3.
        modalities: tuple of str or None. Train and validate only on cases whose dataset metadata names one
            of these modalities (per-modality baselines). The model never sees the modality. Defaults to None.
        strategy: str. "auto", "default", "mirrored" or "multiworker". Defaults to "auto".
        cpu_replicas: int. If > 1, mirror over that many logical CPU devices. Defaults to 0.
        mixed_precision: bool. mixed_float16 on GPU (bfloat16 on CPU), loss scaling for both optimizers.
            Defaults to False.
        jit_compile: bool. XLA-compile the train step. Defaults to False.
        deterministic: bool. Bit-identical runs for the same config, seed and data (TensorFlow: op determinism
            and oneDNN's kernels off, about 1.6x the time per step on a CPU; `training.determinism`).
            Defaults to False.
        modality_weight: float. Weight of the modality-classification loss; used only by the Cond-DCN
            baseline (`ModelConfig.architecture="conditional"`). Defaults to 1.
        quality_calibration: bool. At the end of training, calibrate the per-scan quality estimate on the
            validation cases and degraded copies of them (RUN/quality.json, docs/quality.md). Studies that
            never predict with the run (the ablation harness) turn it off. Defaults to True.
        loss: str. Segmentation loss: "ce" (the paper's pixel-wise cross-entropy) or "ce_dice" (cross-entropy
            plus soft Dice over the foreground classes, as nnU-Net trains). Defaults to "ce".
        lr_schedule: str. "constant" (the paper's), "poly" (nnU-Net's `lr · (1 − step/steps)^0.9`) or
            "cosine"; applied to both networks' learning rates over `steps`. Defaults to "constant".
        sampling: str. How training slices are drawn: "slices" (every slice alike, `foreground_weight`
            favouring slices with any foreground) or "organs" (every case gets the same share, and within a
            case a third of the draws are uniform and two thirds go to slices holding each organ in equal
            parts, so a small organ is seen as often as the liver; modality-blind). Defaults to "slices".
        augmentation: str. Augmentation preset when `augment` is on: "standard" (rotation ±10°, zoom
            0.9–1.1, gamma, contrast, brightness) or "real" (wider spatial ranges plus the intensity changes
            real scans bring: noise, a smooth multiplicative bias field, simulated other CT windows and
            intensity compression; `keras_cdseg.data.augmentation`). Defaults to "standard".
    """

    steps: int = 100000
    batch_size: int = 6
    learning_rate: float = 1e-3
    d_learning_rate: float = 1e-3
    adversarial_weight: float = 1e-3
    seed: int = 0
    augment: bool = True
    foreground_weight: float = 1.0
    val_every: int = 1000
    val_fraction: float = 0.2
    val_max_cases: int = 4
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    modalities: tuple | None = None
    strategy: str = "auto"
    cpu_replicas: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    deterministic: bool = False
    modality_weight: float = 1.0
    quality_calibration: bool = True
    loss: str = "ce"
    lr_schedule: str = "constant"
    sampling: str = "slices"
    augmentation: str = "standard"

    def __post_init__(self):
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "keep_checkpoints", "val_max_cases"):
            _check_positive_int(name, getattr(self, name))
        for name in ("learning_rate", "d_learning_rate", "foreground_weight", "modality_weight"):
            if not getattr(self, name) > 0:
                raise InputError("train config", f"{name} must be > 0. Received: {getattr(self, name)}")
        if not self.adversarial_weight >= 0:
            raise InputError("train config", f"adversarial_weight must be >= 0. Received: {self.adversarial_weight}")
        if not 0 <= self.val_fraction < 1:
            raise InputError("train config", f"val_fraction must be in [0, 1). Received: {self.val_fraction}")
        if not (isinstance(self.cpu_replicas, int) and self.cpu_replicas >= 0):
            raise InputError("train config", f"cpu_replicas must be an int >= 0. Received: {self.cpu_replicas}")
        if self.strategy not in ("auto", "default", "mirrored", "multiworker"):
            raise InputError("train config", f"strategy must be auto, default, mirrored or multiworker. Received: {self.strategy!r}")
        for name, allowed in (
            ("loss", ("ce", "ce_dice")),
            ("lr_schedule", ("constant", "poly", "cosine")),
            ("sampling", ("slices", "organs")),
            ("augmentation", ("standard", "real")),
        ):
            if getattr(self, name) not in allowed:
                raise InputError("train config", f"{name} must be one of {allowed}. Received: {getattr(self, name)!r}")
        if isinstance(self.modalities, str):
            object.__setattr__(self, "modalities", tuple(m.strip() for m in self.modalities.split(",") if m.strip()))
        if self.modalities is not None:
            object.__setattr__(self, "modalities", tuple(self.modalities) or None)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything `cdseg train` needs to reproduce a run: where the data is and the three configs.

    Args:
        data_dir: str. The dataset directory (MSD layout with dataset.json).
        data: DataConfig.
        model: ModelConfig. `num_classes` is taken from the dataset's labels.
        train: TrainConfig.
        cache_dir: str or None. Prepared-volume cache; None puts it in the run directory.
        recipe: str or None. Name of the recipe (`keras_cdseg.recipes`) the settings started from; a record
            only, the three configs hold the resolved values.
    """

    data_dir: str
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    cache_dir: str | None = None
    recipe: str | None = None

    def to_dict(self):
        return {
            "data_dir": self.data_dir,
            "cache_dir": self.cache_dir,
            "recipe": self.recipe,
            "data": to_dict(self.data),
            "model": to_dict(self.model),
            "train": to_dict(self.train),
        }

    @classmethod
    def from_dict(cls, values, source="config"):
        values = dict(values)
        unknown = sorted(set(values) - {"data_dir", "cache_dir", "recipe", "data", "model", "train"})
        if unknown:
            raise InputError(
                source, f"unknown config sections {unknown}; expected data_dir, cache_dir, recipe, data, model, train"
            )
        if not values.get("data_dir"):
            raise InputError(source, "missing data_dir")
        return cls(
            data_dir=str(values["data_dir"]),
            cache_dir=values.get("cache_dir"),
            recipe=values.get("recipe"),
            data=from_dict(DataConfig, values.get("data", {}), source),
            model=from_dict(ModelConfig, values.get("model", {}), source),
            train=from_dict(TrainConfig, values.get("train", {}), source),
        )


def _check_positive_int(name, value):
    if not (isinstance(value, int) and value > 0):
        raise InputError("config", f"{name} must be a positive int. Received: {value!r}")


def to_dict(config):
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(cls, values, source="config"):
    """Builds `cls` from a dict, rejecting unknown keys with a message naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(source, f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(names)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**kwargs)
    except InputError as e:
        if source in ("config", e.source):  # no file to name
            raise
        # A value the config class rejects is named with the file it came from ("run.yaml: data config: ...").
        raise InputError(source, f"{e.source}: {e.problem}") from None


def load_json(path):
    """Reads a JSON file, turning unreadable or malformed files into an `InputError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read file ({e})") from None
    except json.JSONDecodeError as e:
        raise InputError(path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
