"""Choosing the distribution of training: one code path from a laptop CPU to several GPU machines.

TensorFlow: a `tf.distribute` strategy. JAX and PyTorch: a `KerasDistribution`, the few things training
needs of a strategy (`num_replicas_in_sync`, `scope()`), over `keras.distribution.DataParallel` on JAX.
TensorFlow is imported only on the TensorFlow backend.
"""

import contextlib
import json
import os

import keras

from keras_cdseg.errors import InputError

STRATEGIES = ("auto", "default", "mirrored", "multiworker")


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices (before TensorFlow initializes them).

    Returns the logical CPU device names. Raises `InputError` if the runtime already started with fewer.
    """
    import tensorflow as tf

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
    if keras.backend.backend() != "tensorflow":
        return make_keras_distribution(kind, cpu_replicas)
    import tensorflow as tf

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
    if keras.backend.backend() == "jax":
        accelerators = [d for d in keras.distribution.list_devices() if not d.lower().startswith("cpu")]
        if len(accelerators) > 1:
            return "mirrored", f"{len(accelerators)} accelerators are visible (JAX DataParallel)"
        return "default", "one JAX device"
    if keras.backend.backend() != "tensorflow":
        return "default", f"one device ({keras.backend.backend()})"
    import tensorflow as tf

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
    """Sync BatchNorm statistics whenever more than one replica shares a step (TensorFlow only: a JAX
    data-parallel step is one program over the global batch, its statistics are global already)."""
    return strategy.num_replicas_in_sync > 1 and not isinstance(strategy, KerasDistribution)


class KerasDistribution:
    """What training needs of a strategy on JAX / PyTorch: a replica count and a scope.

    Args:
        distribution: `keras.distribution.DataParallel` or None (one device).
    """

    def __init__(self, distribution=None):
        self.distribution = distribution

    @property
    def name(self):
        return type(self.distribution).__name__ if self.distribution is not None else "SingleDevice"

    @property
    def num_replicas_in_sync(self):
        if self.distribution is None:
            return 1
        return int(self.distribution.device_mesh.devices.size)

    def scope(self):
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()


def make_keras_distribution(kind="auto", cpu_replicas=0):
    """`KerasDistribution` of the JAX (data parallel over local devices) or PyTorch (one device) backend.

    `"auto"` is data parallel when more than one accelerator is visible; `"mirrored"` is data parallel
    over every local device; `cpu_replicas > 1` splits the host CPU into that many XLA devices, which
    works only before JAX starts (or with `XLA_FLAGS=--xla_force_host_platform_device_count=N`).
    """
    backend = keras.backend.backend()
    if kind == "multiworker":
        raise InputError("--strategy", f"multiworker needs the TensorFlow backend (KERAS_BACKEND={backend})")
    if backend != "jax":
        if kind == "mirrored" or (cpu_replicas and cpu_replicas > 1):
            raise InputError("--strategy", f"data-parallel training needs TensorFlow or JAX (KERAS_BACKEND={backend})")
        return KerasDistribution(None)
    if cpu_replicas and cpu_replicas > 1:
        flag = f"--xla_force_host_platform_device_count={cpu_replicas}"
        if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
        devices = keras.distribution.list_devices("cpu")
        if len(devices) < cpu_replicas:
            raise InputError(
                "--cpu-replicas", f"JAX already started with {len(devices)} CPU device(s); set XLA_FLAGS={flag}"
            )
        return KerasDistribution(keras.distribution.DataParallel(devices=devices[:cpu_replicas]))
    devices = keras.distribution.list_devices()
    accelerators = [d for d in devices if not d.lower().startswith("cpu")]
    if kind == "mirrored" or (kind == "auto" and len(accelerators) > 1):
        return KerasDistribution(keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else None)
    return KerasDistribution(None)
