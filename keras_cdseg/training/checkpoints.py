"""Training checkpoints: both networks, both optimizers, the step and the best validation score.

The data stream is a pure function of (seed, step) (see `make_training_dataset`), so the step is all the
iterator state a resumed run needs to continue with exactly the batches an uninterrupted run would see.
TensorFlow writes checkpoint files under temporary names and updates its `checkpoint` index file
atomically, so a kill mid-save leaves the previous checkpoint as the latest.
"""

import tensorflow as tf


class TrainingState:
    """`tf.train.Checkpoint` + `CheckpointManager` of a `CrossDomainModel` run.

    Args:
        model: compiled `CrossDomainModel` (optimizers built).
        directory: str or Path. RUN_DIR/checkpoints.
        keep: int. Checkpoints kept.
    """

    def __init__(self, model, directory, keep):
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
