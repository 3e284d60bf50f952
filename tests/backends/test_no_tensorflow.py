"""On JAX (and PyTorch) the core — layers, models, losses, train step, checkpoints, distribution, Keras
inference — imports and trains with `import tensorflow` blocked (`sys.modules["tensorflow"] = None`)."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["tensorflow"] = None  # every `import tensorflow` now raises ImportError
    import keras
    import numpy as np
    import keras_cdseg.layers, keras_cdseg.losses
    from keras_cdseg.models.saving import load_model, register_serializables
    register_serializables()  # imports every layer and model module
    from keras_cdseg.distribute import make_strategy, needs_synchronized_batch_norm
    from keras_cdseg.inference.volume import keras_predictor
    from keras_cdseg.inference.predictors import KerasPredictor
    from keras_cdseg.models.conditional_domain_model import ConditionalDomainModel
    from keras_cdseg.models.conditional_segmenter import build_conditional_segmenter
    from keras_cdseg.models.cross_domain_model import CrossDomainModel
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter
    from keras_cdseg.training.checkpoints import NpzTrainingState, make_training_state

    tmp = sys.argv[1]
    strategy = make_strategy("auto")
    assert strategy.num_replicas_in_sync == 1 and not needs_synchronized_batch_norm(strategy)
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., 1] > 0.5).astype(int)]
    model = CrossDomainModel(build_segmenter((32, 32, 3), 2, base_filters=4, depth=2),
                             build_discriminator(filters=4, num_blocks=2, dense_units=8))
    model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=1e-3)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert {"seg_loss", "d_loss", "g_adv_loss"} <= set(logs), logs
    state = make_training_state(model, tmp + "/ckpt", keep=2)
    assert isinstance(state, NpzTrainingState)
    state.save(1, 0.5)
    saved = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    assert state.restore_latest() == (1, 0.5)
    assert all(np.array_equal(a, b) for a, b in zip(saved, model.get_weights()))
    model.generator.save(tmp + "/g.keras")
    expected = keras.ops.convert_to_numpy(model.generator(x, training=False))
    np.testing.assert_allclose(keras_predictor(load_model(tmp + "/g.keras"))(x), expected, atol=1e-6)
    cond = ConditionalDomainModel(build_conditional_segmenter((32, 32, 3), base_filters=4, depth=2))
    cond.compile(keras.optimizers.Adam(1e-3), adversarial_weight=0.0)
    cond.train_on_batch(x, {"segmentation": y, "modality": np.eye(2, dtype="float32")})
    assert sys.modules["tensorflow"] is None
    print("ok", keras.backend.backend())
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_core_imports_and_trains_without_tensorflow(backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"backend {backend!r} is not installed")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(f"ok {backend}")
