"""Choosing the `tf.distribute` strategy: one code path from a laptop CPU to several GPU machines."""

import json
import os

import tensorflow as tf

from keras_cdseg.errors import InputError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices (before TensorFlow initializes them).

    Returns the logical CPU device names. Raises `InputError` if the runtime already started with fewer.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError:
        pass  # already initialized: fine if it has enough logical CPUs
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) < num_devices:
        raise InputError(
            "--cpu-replicas", f"TensorFlow already started with {len(names)} logical CPU(s); cannot make {num_devices}"
        )
    return names[:num_devices]


def make_strategy(kind="auto", cpu_replicas=0):
    """Returns the distribution strategy for training.

    Args:
        kind: str. `"auto"` (multi-worker if `TF_CONFIG` is set, mirrored over all GPUs if more than one is
            visible, else the default single-device strategy), `"default"`, `"mirrored"` or `"multiworker"`.
        cpu_replicas: int. If > 1, mirror over that many logical CPU devices (for tests and CPU machines).

    Mirroring over logical CPUs reduces through one device instead of collective ops: the CPU collective
    implementation keys its ops by per-process counters, which fall out of step when a second
    MirroredStrategy is made in the same process (TensorFlow issue #62790).
    """
    if kind not in STRATEGIES:
        raise InputError("--strategy", f"must be one of {STRATEGIES}. Received: {kind!r}")
    if cpu_replicas and cpu_replicas > 1:
        if kind == "multiworker":
            raise InputError("--cpu-replicas", "cannot be combined with the multiworker strategy")
        return tf.distribute.MirroredStrategy(
            split_cpu(cpu_replicas), cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if kind == "auto":
        kind = auto_strategy_kind()[0]
    if kind == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def auto_strategy_kind():
    """`(kind, reason)` that `make_strategy("auto")` picks here, without creating the strategy."""
    if os.environ.get("TF_CONFIG"):
        return "multiworker", "TF_CONFIG is set"
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > 1:
        return "mirrored", f"{num_gpus} GPUs are visible (synchronized BatchNorm)"
    return "default", f"{num_gpus} GPU visible" if num_gpus == 1 else "no GPU visible: one CPU device"


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InputError("TF_CONFIG", "the multiworker strategy needs the TF_CONFIG environment variable")
    try:
        config = json.loads(raw)
        config["cluster"]["worker"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError("TF_CONFIG", f"not a valid cluster description ({e})") from None


def needs_synchronized_batch_norm(strategy):
    """Sync BatchNorm statistics whenever more than one replica shares a step."""
    return strategy.num_replicas_in_sync > 1
