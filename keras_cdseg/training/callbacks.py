"""Callbacks that make long runs reliable: step counting, checkpoints, stop on NaN or SIGINT, history."""

import csv
import io
import math
import time

import keras
import numpy as np

from keras_cdseg.io_utils import write_text_atomic
from keras_cdseg.training.duration import format_duration


class StepControl(keras.callbacks.Callback):
    """Counts global steps; checkpoints every `checkpoint_every` steps and at every epoch end; stops
    training after the current step on a non-finite loss (without checkpointing it) or on request (SIGINT),
    saving first.

    Args:
        save: callable(step, best_score). Writes a checkpoint and the last generator.
        start_step: int. Global step the run starts (or resumes) at.
        checkpoint_every: int.
        steps_per_epoch: int. Checkpoints due at an epoch's last step wait for its end, after validation
            and history: a checkpoint never gets ahead of the history it resumes with.
        best_score: float. Best validation score so far (restored on resume).
    """

    def __init__(
        self, save, start_step, checkpoint_every, steps_per_epoch, total_steps, best_score=float("-inf"), best_step=None
    ):
        super().__init__()
        self.total_steps = total_steps
        self._save = save
        self.step = start_step
        self.checkpoint_every = checkpoint_every
        self.steps_per_epoch = steps_per_epoch
        self.best_score = best_score
        self.best_step = best_step
        self.last_saved_step = start_step
        self.failure = None
        self.interrupted = False

    @property
    def stopped(self):
        return self.failure is not None or self.interrupted

    def request_stop(self):
        """Called from the SIGINT handler: finish the running step, save, stop."""
        self.interrupted = True
        if self.model is not None:
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        for name, value in (logs or {}).items():
            value = float(value)
            if not math.isfinite(value):
                self.failure = {"step": self.step, "metric": name, "value": value}
                self.model.stop_training = True
                return
        if self.interrupted:
            self.model.stop_training = True
        elif self.step % self.checkpoint_every == 0 and not self._ends_epoch(self.step):
            self.save()

    def _ends_epoch(self, step):
        return step % self.steps_per_epoch == 0 or step == self.total_steps

    def on_epoch_end(self, epoch, logs=None):
        if self.failure is None and self.step != self.last_saved_step:
            self.save()

    def save(self):
        self._save(self.step, self.best_score)
        self.last_saved_step = self.step


class HistoryWriter(keras.callbacks.Callback):
    """Rewrites RUN_DIR/history.csv (atomically) and writes TensorBoard scalars at every epoch end.

    Rows carry the global `step`; a resumed run first drops rows past its checkpoint.
    """

    def __init__(self, path, control, rows=(), writer=None):
        super().__init__()
        self.path = path
        self.control = control
        self.rows = list(rows)
        self.writer = writer
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.control.failure is not None or not logs:
            return
        row = {"step": self.control.step, "epoch": epoch + 1, "wall_s": round(time.perf_counter() - self.started, 1)}
        row.update({name: float(value) for name, value in logs.items()})
        self.rows.append(row)
        write_text_atomic(self.path, rows_to_csv(self.rows))
        if self.writer is not None:
            import tensorflow as tf

            with self.writer.as_default(step=self.control.step):
                for name, value in row.items():
                    if name not in ("step", "epoch") and np.isfinite(value):
                        tf.summary.scalar(name, value)
            self.writer.flush()


class ProgressLog(keras.callbacks.Callback):
    """One line per epoch (every `val_every` steps) through `log`, for runs without Keras's progress bar
    (`verbose=0`, e.g. every run of a benchmark): step, loss, validation score, speed and time left.

    Speed and time left come from this session's steps only (a resumed run does not count its past).
    """

    def __init__(self, control, log):
        super().__init__()
        self.control = control
        self.log = log
        self.start_step = control.step
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        control = self.control
        if control.stopped:  # a failure or Ctrl-C: the trainer says so itself
            return
        logs = logs or {}
        steps = control.step - self.start_step
        seconds_per_step = (time.perf_counter() - self.started) / steps if steps else float("nan")
        left = (control.total_steps - control.step) * seconds_per_step
        parts = [f"step {control.step}/{control.total_steps}"]
        loss = next((name for name in ("seg_loss", "loss") if name in logs), None)
        if loss is not None:
            parts.append(f"{loss} {float(logs[loss]):.4f}")
        if "val_score" in logs:
            best = f" (best {control.best_score:.2f} at {control.best_step})" if control.best_step else ""
            parts.append(f"val_score {float(logs['val_score']):.2f}{best}")
        if math.isfinite(seconds_per_step):
            parts.append(f"{seconds_per_step:.2f} s/step, ~{format_duration(left)} left")
        self.log("; ".join(parts))


def rows_to_csv(rows):
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def read_history(path, max_step=None):
    """Rows of an existing history.csv (numbers as floats), optionally only up to `max_step`."""
    try:
        with open(path, newline="") as f:
            rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []
    for row in rows:
        row["step"], row["epoch"] = int(row["step"]), int(row["epoch"])
    return [row for row in rows if max_step is None or row["step"] <= max_step]
