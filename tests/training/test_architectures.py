"""The paper's baselines train through the same trainer: Att-DCN unchanged, Cond-DCN with modality targets
taken from dataset metadata (the one variant allowed to see them)."""

import dataclasses

import numpy as np
import pytest

from keras_cdseg.config import DataConfig
from keras_cdseg.data.cache import build_cache
from keras_cdseg.data.dataset import load_dataset
from keras_cdseg.data.pipeline import make_training_dataset
from keras_cdseg.models.saving import load_model
from keras_cdseg.training.callbacks import read_history
from keras_cdseg.training.trainer import train

from test_trainer import tiny_config


@pytest.fixture(scope="module")
def tiny_cache(tiny_dataset, tmp_path_factory):
    index = load_dataset(tiny_dataset)
    return build_cache(index, DataConfig(image_size=32, target_spacing_mm=12.0), tmp_path_factory.mktemp("cache"), progress=False)


def first_batch(cache, cases, **kwargs):
    dataset = make_training_dataset(cache, cases, batch_size=6, seed=3, num_classes=2, **kwargs)
    return next(iter(dataset))


def test_modality_targets_follow_each_slice_and_leave_images_unchanged(tiny_cache):
    ct = [c for c in tiny_cache.case_ids if tiny_cache.entry(c).modality == "CT"]
    mr = [c for c in tiny_cache.case_ids if tiny_cache.entry(c).modality == "MR"]
    names = ["CT", "MR"]
    _, targets = first_batch(tiny_cache, ct, modality_names=names)
    np.testing.assert_array_equal(targets["modality"].numpy(), np.tile([1.0, 0.0], (6, 1)))
    _, targets = first_batch(tiny_cache, mr, modality_names=names)
    np.testing.assert_array_equal(targets["modality"].numpy(), np.tile([0.0, 1.0], (6, 1)))
    # Asking for modality targets changes nothing else in the stream.
    x_plain, y_plain = first_batch(tiny_cache, ct + mr)
    x_mod, targets = first_batch(tiny_cache, ct + mr, modality_names=names)
    np.testing.assert_array_equal(x_plain.numpy(), x_mod.numpy())
    np.testing.assert_array_equal(y_plain.numpy(), targets["segmentation"].numpy())


@pytest.mark.parametrize("architecture, extra_logs", [("attention", set()), ("conditional", {"modality_loss", "modality_accuracy"})])
def test_baseline_architectures_train_and_predict_from_images_alone(tiny_dataset, tmp_path, architecture, extra_logs):
    config = tiny_config(tiny_dataset, steps=2, val_every=2)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, architecture=architecture))
    summary = train(config, tmp_path / architecture, verbose=0)
    assert summary["status"] == "finished"
    history = read_history(tmp_path / architecture / "history.csv")
    assert extra_logs <= set(history[-1]) and "val_dice_liver_MR" in history[-1]
    generator = load_model(tmp_path / architecture / "last_generator.keras")
    probabilities = generator.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
    assert probabilities.shape == (1, 32, 32, 2)
