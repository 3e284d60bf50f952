"""One `Predictor` interface over every kind of trained model (the default model: `keras_cdseg.model_resolution`).

    load_predictor(path)            a run directory      -> its best generator (.keras), config.json
                                    a .keras file        -> that generator, config.json of its run if any
                                    a version directory  -> SavedModel `serving_default`, model.json
                                    saved_models/<name>  -> its highest version (what TF Serving serves)
                                    a .tflite file       -> LiteRT interpreter, model.json beside it

Every predictor is a callable `slices [N, H, W, 2T+1] float32 -> probabilities [N, H, W, C] float32` with a
`card` (`keras_cdseg.model_card.ModelCard`) saying how volumes must be prepared for it, so every kind goes through
the same `keras_cdseg.inference.predict_volume`.
"""

import os
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.model_card import (
    MODEL_JSON,
    SIGNATURE_NAME,
    card_for_keras_file,
    card_from_run,
    check_model_matches_card,
    list_versions,
    read_model_card,
)
from keras_cdseg.models.saving import load_generator

MODEL_KINDS = ("keras", "saved_model", "tflite")


class Predictor:
    """A loaded model: call it on prepared slices; `card` tells how to prepare them.

    Args:
        kind: str. "keras", "saved_model" or "tflite".
        path: Path. What was loaded (a .keras or .tflite file, or a SavedModel directory).
        card: ModelCard. Preprocessing, labels and post-processing of the model.
        input_shape: (int, int, int). `(H, W, 2T+1)` the network takes.
    """

    def __init__(self, kind, path, card, input_shape):
        self.kind = kind
        self.path = Path(path)
        self.card = card
        self.input_shape = tuple(int(n) for n in input_shape)

    def __call__(self, slices):
        slices = np.asarray(slices, dtype=np.float32)
        if slices.ndim != 4 or slices.shape[1:] != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise ValueError(f"expected slices of shape [N, {expected}], got {slices.shape}")
        return self._predict(slices)

    def _predict(self, slices):
        raise NotImplementedError

    def describe(self):
        return f"{self.kind} {self.path}"

    def __repr__(self):
        return f"<{type(self).__name__} {self.describe()}>"


class KerasPredictor(Predictor):
    """A `.keras` generator run on the active Keras backend (see `inference.keras_predictor`): one compiled
    `tf.function` on TensorFlow, one `jax.jit` of its stateless call on JAX, eager `no_grad` on PyTorch."""

    def __init__(self, path, card=None):
        from keras_cdseg.inference.volume import keras_predictor

        model = load_generator(path)
        input_shape = model.input_shape[1:]
        if card is None:
            card = card_for_keras_file(path, input_shape, model.output_shape[-1])
        check_model_matches_card(input_shape, model.output_shape[-1], card, path)
        super().__init__("keras", path, card, input_shape)
        self.model = model
        self._forward = keras_predictor(model)

    def _predict(self, slices):
        return self._forward(slices)


class SavedModelPredictor(Predictor):
    """The `serving_default` signature of an exported version directory, as TF Serving would run it."""

    def __init__(self, path):
        import tensorflow as tf

        card = read_model_card(Path(path) / MODEL_JSON)
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:  # TF raises several types for corrupt SavedModels; all mean "unreadable".
            raise InputError(path, f"cannot load SavedModel ({type(e).__name__})") from None
        if SIGNATURE_NAME not in loaded.signatures:
            raise InputError(path, f"SavedModel has no {SIGNATURE_NAME!r} signature")
        signature = loaded.signatures[SIGNATURE_NAME]
        input_spec = next(iter(signature.structured_input_signature[1].values()))
        output_spec = signature.structured_outputs["probabilities"]
        check_model_matches_card(input_spec.shape[1:], output_spec.shape[-1], card, path)
        super().__init__("saved_model", path, card, input_spec.shape[1:])
        self._loaded = loaded  # keeps the variables alive
        self._signature = signature
        from keras_cdseg.inference.quality.exported_statistics import load_feature_statistics

        # (forward, moving statistics, organ value) of the quality_statistics signature, None for older exports
        self.feature_statistics = load_feature_statistics(loaded, path)
        self._tf = tf

    def _predict(self, slices):
        return self._signature(slices=self._tf.constant(slices))["probabilities"].numpy()


class TFLitePredictor(Predictor):
    """A `.tflite` export run with the LiteRT interpreter (`ai-edge-litert`), `tf.lite.Interpreter` without it.

    With LiteRT nothing imports TensorFlow or Keras: not the network, and not the quality probe when the
    file carries the `quality_statistics` signature (`cdseg export` writes it; `feature_statistics`).

    Args:
        path: the .tflite file; its `model.json` must sit in the same folder (the exported version directory).
        num_threads: int or None. Interpreter threads; None uses every CPU.
    """

    def __init__(self, path, num_threads=None):
        from keras_cdseg.inference.quality.exported_statistics import load_tflite_feature_statistics

        card = read_model_card(Path(path).parent / MODEL_JSON)
        interpreter_class, self.runtime = tflite_interpreter_class()
        try:
            interpreter = interpreter_class(model_path=str(path), num_threads=num_threads or os.cpu_count())
            runner = interpreter.get_signature_runner(SIGNATURE_NAME)
        except (ValueError, RuntimeError) as e:
            raise InputError(path, f"cannot load TFLite model ({_first_line(e)})") from None
        details = runner.get_input_details()
        if "slices" not in details:
            raise InputError(path, f"TFLite signature {SIGNATURE_NAME!r} has no 'slices' input")
        input_shape = tuple(int(n) for n in details["slices"]["shape"][1:])
        num_classes = int(runner.get_output_details()["probabilities"]["shape"][-1])
        check_model_matches_card(input_shape, num_classes, card, path)
        super().__init__("tflite", path, card, input_shape)
        self._interpreter = interpreter
        self._runner = runner
        self.feature_statistics = load_tflite_feature_statistics(interpreter, Path(path).parent)
        # The runtime prepares its kernels (XNNPACK) on the first call: make it now, so a model it cannot run
        # fails here, naming the file, and not on the first scan.
        try:
            self._runner(slices=np.zeros((1, *input_shape), np.float32))
        except (ValueError, RuntimeError) as e:
            raise InputError(path, f"cannot run TFLite model ({_first_line(e)})") from None

    def _predict(self, slices):
        return self._runner(slices=slices)["probabilities"]


def backend_forward(model):
    """`predict(slices [N, H, W, 2T+1] float32) -> probabilities float32` on the JAX or PyTorch backend.

    JAX: one `jax.jit` of `model.stateless_call` taking the variables' current values as arguments, so a
    model that is still training (validation) is always run with its latest weights.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        forward = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(trainable, non_trainable, x, training=False)[0])

        def predict(slices):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return np.asarray(forward(trainable, non_trainable, np.asarray(slices, np.float32)), dtype=np.float32)

        return predict
    if backend == "torch":
        import torch

        def predict(slices):
            with torch.no_grad():
                output = model(np.asarray(slices, np.float32), training=False)
            return np.asarray(keras.ops.convert_to_numpy(output), dtype=np.float32)

        return predict
    raise NotImplementedError(f"no forward for backend {backend!r}")


def _first_line(error):
    return str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__


def tflite_interpreter_class():
    """`(Interpreter class, runtime name)`: LiteRT if installed, else TensorFlow's deprecated `tf.lite.Interpreter`."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, "tf.lite"


def load_predictor(path):
    """Loads any model kind (see the module docstring) as a `Predictor`.

    Raises:
        InputError: the path does not exist or is no model, the model cannot be loaded, its `model.json`
            is missing or invalid, or its input channels / size / classes disagree with that configuration.
    """
    from keras_cdseg.run_dir import is_run_dir, load_run

    path = Path(path)
    if not path.exists():
        raise InputError(path, "model not found")
    if path.is_dir():
        if is_run_dir(path):
            run_card = card_from_run(path)
            return KerasPredictor(load_run(path).generator_path("best"), card=run_card)
        if (path / "saved_model.pb").is_file():
            return SavedModelPredictor(path)
        versions = [v for v in list_versions(path) if (path / str(v) / "saved_model.pb").is_file()]
        if versions:
            return SavedModelPredictor(path / str(versions[-1]))
        raise InputError(path, "not a model: expected a run directory, an exported version directory, "
                               "saved_models/<name>, a .keras or a .tflite file")  # fmt: skip
    if path.suffix == ".keras":
        return KerasPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path)
    raise InputError(path, "not a model: expected a run directory, an exported version directory, "
                           "a .keras or a .tflite file")  # fmt: skip
