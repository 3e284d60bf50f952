"""`experiments.resumable`: one experiment run's training ends finished, failed (recorded) or resumable."""

import json

from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from keras_cdseg.experiments.resumable import clock, differences, train_for_result


def _config(data_dir, **train):
    return RunConfig(
        data_dir=str(data_dir),
        data=DataConfig(image_size=32, target_spacing_mm=12.0),
        model=ModelConfig(preset="unet", base_filters=4, depth=2, norm="instance"),
        train=TrainConfig(batch_size=2, augment=False, seed=1, val_max_cases=1, quality_calibration=False, **train),
    )


def test_a_finished_training_is_reused_and_a_non_finite_loss_is_recorded_as_failed(tiny_dataset, tmp_path):
    base = {"variant": "method", "fold": 0}
    summary, timings, ended = train_for_result(_config(tiny_dataset, steps=4, val_every=4), tmp_path / "ok", base)
    assert ended is None and summary["status"] == "finished" and timings["train_s"] > 0
    again = train_for_result(_config(tiny_dataset, steps=4, val_every=4), tmp_path / "ok", base)
    assert again == (summary, {}, None)  # nothing trained again: no train_s
    assert not (tmp_path / "ok" / "result.json").exists()  # the caller writes a finished run's result

    summary, timings, ended = train_for_result(
        _config(tiny_dataset, steps=20, val_every=10, checkpoint_every=2, learning_rate=1e30), tmp_path / "nan", base
    )
    assert summary is None and ended["status"] == "failed" and "became" in ended["error"]
    assert json.loads((tmp_path / "nan" / "result.json").read_text()) == ended and ended["variant"] == "method"


def test_messages():
    assert clock(3725.4) == "1:02:05" and clock(59.6) == "0:01:00"
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == "b: 2 vs 3, c: None vs 4"
    assert differences(1, 2) == "1 vs 2"
