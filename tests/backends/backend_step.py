"""Runs one adversarial SGD step on the active Keras backend (a script the backend tests start).

    KERAS_BACKEND=jax python tests/backends/backend_step.py IN.npz OUT.npz [IN2.npz OUT2.npz ...]

IN.npz holds `kind` ("cross_domain" or "conditional"), the initial generator / discriminator weights
(`g_0`, `g_1`, ... and `d_0`, ...) and the batch (`x`, `y`, and `m` for the modality labels). OUT.npz gets
the weights after one `train_on_batch` and the logs (`log_<name>`), plus `backend`.
"""

import sys

import keras
import numpy as np

SHAPE = (32, 32, 3)


def build(kind):
    """The tiny model of the equivalence tests, compiled with SGD (deterministic, no slot variables)."""
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    discriminator = build_discriminator(norm="batch", filters=4, num_blocks=2, dense_units=8)
    optimizers = (keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5))
    if kind == "conditional":
        from keras_cdseg.models.conditional_domain_model import ConditionalDomainModel
        from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter

        generator = build_conditional_segmenter(SHAPE, num_classes=2, base_filters=4, depth=2, norm="batch")
        model = ConditionalDomainModel(generator, discriminator, class_names=["bg", "liver"])
        model.compile(*optimizers, adversarial_weight=0.5, modality_weight=1.0)
        return model
    from keras_cdseg.models.cross_domain_model import CrossDomainModel

    generator = build_segmenter(SHAPE, num_classes=2, base_filters=4, depth=2, norm="batch")
    model = CrossDomainModel(generator, discriminator, class_names=["bg", "liver"])
    model.compile(*optimizers, adversarial_weight=0.5)
    return model


def get_state(model):
    """`{g_i, d_i}`: every weight (trainable and BatchNorm statistics) of both networks."""
    state = {f"g_{i}": np.asarray(w) for i, w in enumerate(model.generator.get_weights())}
    state.update({f"d_{i}": np.asarray(w) for i, w in enumerate(model.discriminator.get_weights())})
    return state


def set_state(model, state):
    model.generator.set_weights([state[f"g_{i}"] for i in range(len(model.generator.get_weights()))])
    model.discriminator.set_weights([state[f"d_{i}"] for i in range(len(model.discriminator.get_weights()))])


def batch_of(state):
    if "m" in state:
        return state["x"], {"segmentation": state["y"], "modality": state["m"]}
    return state["x"], state["y"]


def main(in_path, out_path):
    data = dict(np.load(in_path))
    model = build(str(data["kind"]))
    set_state(model, data)
    logs = model.train_on_batch(*batch_of(data), return_dict=True)
    out = get_state(model)
    out.update({f"log_{name}": np.float64(value) for name, value in logs.items()})
    out["backend"] = np.array(keras.backend.backend())
    np.savez(out_path, **out)


if __name__ == "__main__":
    paths = sys.argv[1:]
    for i in range(0, len(paths), 2):
        main(paths[i], paths[i + 1])
