"""Training checkpoints: both networks, both optimizers, the step and the best validation score.

The data stream is a pure function of (seed, step) (see `make_training_dataset`), so the step is all the
iterator state a resumed run needs to continue with exactly the batches an uninterrupted run would see.

Two formats with one interface (`latest_step`, `save(step, best_score)`, `restore_latest()`), chosen by
`make_training_state` from the Keras backend:

- TensorFlow: `tf.train.Checkpoint` + `CheckpointManager`. TensorFlow writes checkpoint files under
  temporary names and updates its `checkpoint` index file atomically, so a kill mid-save leaves the
  previous checkpoint as the latest.
- JAX / PyTorch (`NpzTrainingState`): `ckpt-<step>.npz` holding every variable of both networks and both
  optimizers by path, plus the step and best score, written under a temporary name and renamed, so a
  file named `ckpt-<step>.npz` is always complete; the newest `keep` files are kept.
"""

import re
from pathlib import Path

import keras
import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.io_utils import atomic_path


def make_training_state(model, directory, keep):
    """`TrainingState` on TensorFlow, `NpzTrainingState` on every other backend."""
    if keras.backend.backend() == "tensorflow":
        return TrainingState(model, directory, keep)
    return NpzTrainingState(model, directory, keep)


class TrainingState:
    """`tf.train.Checkpoint` + `CheckpointManager` of a `CrossDomainModel` run.

    Args:
        model: compiled `CrossDomainModel` (optimizers built).
        directory: str or Path. RUN_DIR/checkpoints.
        keep: int. Checkpoints kept.
    """

    def __init__(self, model, directory, keep):
        import tensorflow as tf

        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.best_score = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False, name="best_score")
        objects = {"generator": model.generator, "g_optimizer": model.g_optimizer, "step": self.step}
        objects["best_score"] = self.best_score
        if model.discriminator is not None:
            objects["discriminator"] = model.discriminator
        if model.d_optimizer is not None:
            objects["d_optimizer"] = model.d_optimizer
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=keep)

    @property
    def latest_step(self):
        path = self.manager.latest_checkpoint
        return None if path is None else int(path.rsplit("-", 1)[-1])

    def save(self, step, best_score):
        self.step.assign(step)
        self.best_score.assign(best_score)
        return self.manager.save(checkpoint_number=step)

    def restore_latest(self):
        """Restores the latest checkpoint; returns (step, best_score), or None if there is none."""
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.step.numpy()), float(self.best_score.numpy())


_NPZ_NAME = re.compile(r"^ckpt-(\d+)\.npz$")
_STEP_KEY, _BEST_KEY = "__step__", "__best_score__"


class NpzTrainingState:
    """Backend-neutral checkpoints of a `CrossDomainModel` run: one `.npz` per saved step.

    Args:
        model: compiled `CrossDomainModel` (optimizers built).
        directory: str or Path. RUN_DIR/checkpoints.
        keep: int. Checkpoints kept.
    """

    def __init__(self, model, directory, keep):
        self.model = model
        self.directory = Path(directory)
        self.keep = max(int(keep), 1)

    def _variables(self):
        """`{key: variable}` of everything a resumed run needs, in a fixed order."""
        model = self.model
        groups = [("generator", model.generator.variables), ("g_optimizer", model.g_optimizer.variables)]
        if model.discriminator is not None:
            groups.append(("discriminator", model.discriminator.variables))
        if model.d_optimizer is not None:
            groups.append(("d_optimizer", model.d_optimizer.variables))
        return {f"{group}/{i:04d}/{v.path}": v for group, variables in groups for i, v in enumerate(variables)}

    def _checkpoints(self):
        """`[(step, path)]` of complete checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _NPZ_NAME.match(p.name))]
        return sorted(found)

    @property
    def latest_step(self):
        checkpoints = self._checkpoints()
        return checkpoints[-1][0] if checkpoints else None

    def save(self, step, best_score):
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()  # JAX keeps the training state outside the variables mid-epoch
        arrays = {key: np.asarray(keras.ops.convert_to_numpy(v.value)) for key, v in self._variables().items()}
        arrays[_STEP_KEY] = np.int64(step)
        arrays[_BEST_KEY] = np.float64(best_score)
        path = self.directory / f"ckpt-{int(step)}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        for _, old in self._checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        return str(path)

    def restore_latest(self):
        """Restores the latest checkpoint; returns (step, best_score), or None if there is none.

        Raises `InputError` if the checkpoint does not hold exactly this model's variables.
        """
        checkpoints = self._checkpoints()
        if not checkpoints:
            return None
        path = checkpoints[-1][1]
        variables = self._variables()
        with np.load(path) as saved:
            keys = set(saved.files) - {_STEP_KEY, _BEST_KEY}
            if keys != set(variables):
                missing, extra = sorted(set(variables) - keys), sorted(keys - set(variables))
                raise InputError(path, f"checkpoint does not match the model (missing {missing[:3]}, extra {extra[:3]})")
            for key, variable in variables.items():
                value = saved[key]
                if tuple(value.shape) != tuple(variable.shape):
                    raise InputError(path, f"{key}: shape {value.shape} in the checkpoint, {variable.shape} in the model")
                variable.assign(value)
            return int(saved[_STEP_KEY]), float(saved[_BEST_KEY])
