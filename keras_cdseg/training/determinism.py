"""Bit-identical training runs: the same config, seed and data give the same weights (`train.deterministic`).

A fixed seed fixes the initial weights, the split, the slice order and every augmentation, but not the order in
which TensorFlow's CPU kernels sum: on this project's 2-core machine two runs of the `real-cpu` recipe with the
same seed matched for 30 steps and differed by up to 0.017 in a weight after 300 (the bundled model's recipe,
trained twice for folds 1 and 2, moved one MR spleen's Dice by 0.48; docs/results.md). TensorFlow's op
determinism alone (`TF_DETERMINISTIC_OPS=1`) left them 0.019 apart; with oneDNN's kernels off as well
(`TF_ENABLE_ONEDNN_OPTS=0`, which TensorFlow reads once, when it is imported) the two runs gave the same weights
to the bit, at about 1.6× the time per step (330-377 s against 209-216 s for 300 steps; docs/training.md,
"Bit-identical runs").

So the switch has to act before TensorFlow starts: `cdseg train` calls `prepare(train_config, backend)` before
anything imports it (the step-timing child inherits the environment), and the trainer calls `enable(train_config)`
once TensorFlow is loaded. A library user sets both variables before importing TensorFlow, or gets an error
saying so.
"""

import os
import sys

from keras_cdseg.errors import InputError

ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_DETERMINISTIC_OPS": "1"}


def prepare(train_config, backend):
    """Sets the environment a deterministic run needs; call before TensorFlow is imported.

    Args:
        train_config: `TrainConfig`; nothing happens unless `deterministic` is set.
        backend: str. The Keras backend the run will use.

    Raises:
        InputError: another backend than TensorFlow, or TensorFlow already imported with oneDNN on.
    """
    if not train_config.deterministic:
        return
    if backend != "tensorflow":
        raise InputError("--deterministic", f"bit-identical training is implemented for the TensorFlow backend only (KERAS_BACKEND={backend})")
    if "tensorflow" in sys.modules and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        raise InputError("--deterministic", "TensorFlow was imported with oneDNN's kernels on; set "
                         "TF_ENABLE_ONEDNN_OPTS=0 and TF_DETERMINISTIC_OPS=1 before importing it")  # fmt: skip
    os.environ.update(ENVIRONMENT)


def enable(train_config):
    """Turns on TensorFlow's op determinism for a deterministic run, after `prepare`'s checks (oneDNN kept off)."""
    if not train_config.deterministic:
        return
    import keras

    prepare(train_config, keras.backend.backend())
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
