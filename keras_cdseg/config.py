"""Frozen configuration dataclasses with JSON round-trip.

`DataConfig` fixes how a volume becomes model input (shared by training, evaluation, prediction and
exported-model clients), `ModelConfig` the network, `TrainConfig` the optimisation. The effective configs
are written next to every run and exported model so a result can be reproduced from files alone.
"""

import dataclasses
import json
from pathlib import Path

from keras_cdseg.errors import InputError


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
    """

    image_size: int = 256
    target_spacing_mm: float = 1.5
    context: int = 1
    clip_percentiles: tuple = (0.5, 99.5)

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

    @property
    def num_channels(self):
        return 2 * self.context + 1


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
    """

    preset: str = "paper"
    num_classes: int = 2
    base_filters: int | None = None
    depth: int | None = None
    norm: str | None = "batch"
    norm_order: str = "pre"

    def __post_init__(self):
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
    return cls(**kwargs)


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
