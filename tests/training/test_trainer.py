"""Training runs end to end on tiny synthetic CT + MR volumes (32×32 slices, a 2-level U-Net)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from cdseg.main import cli
from keras_cdseg.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from keras_cdseg.errors import InputError, TrainingError
from keras_cdseg.models.saving import load_model
from keras_cdseg.training.cli_config import build_run_config
from keras_cdseg.training.callbacks import read_history
from keras_cdseg.run_dir import load_run
from keras_cdseg.training.trainer import epoch_segments, train

TINY_FLAGS = [
    "--image-size", "32", "--target-spacing", "12", "--preset", "unet", "--base-filters", "4", "--depth", "2",
    "--norm", "instance", "--batch-size", "2", "--no-augment", "--seed", "1", "--val-max-cases", "1",
    "--no-quality-calibration",  # tests/inference/quality covers it; here it would only add minutes
]


def tiny_config(data_dir, **train_overrides):
    train_values = dict(batch_size=2, augment=False, seed=1, val_max_cases=1, quality_calibration=False)
    train_values.update(train_overrides)
    return RunConfig(
        data_dir=str(data_dir),
        data=DataConfig(image_size=32, target_spacing_mm=12.0),
        model=ModelConfig(preset="unet", base_filters=4, depth=2, norm="instance"),
        train=TrainConfig(**train_values),
    )


def generator_weights(run_dir, name="last_generator.keras"):
    return load_model(run_dir / name).get_weights()


def assert_same_weights(a, b, atol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


def cdseg(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "cdseg.main", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )


def test_epoch_segments_cover_the_run_in_whole_epochs():
    assert epoch_segments(0, 1000, 100) == [(0, 10, 100)]
    assert epoch_segments(250, 1000, 100) == [(2, 3, 50), (3, 10, 100)]
    assert epoch_segments(0, 250, 100) == [(0, 2, 100), (2, 3, 50)]
    assert epoch_segments(300, 300, 100) == []


@pytest.fixture(scope="module")
def reference_run(tiny_dataset, tmp_path_factory):
    """An uninterrupted 24-step run: the result every interrupted or distributed variant must reproduce."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    lines = []
    summary = train(tiny_config(tiny_dataset, steps=24, val_every=8, checkpoint_every=4), run_dir, verbose=0,
                    log=lines.append)  # fmt: skip
    return run_dir, summary, lines


def test_a_run_writes_its_config_history_checkpoints_and_generators(reference_run, tiny_dataset):
    run_dir, summary, lines = reference_run
    assert summary["status"] == "finished" and summary["steps_done"] == 24
    run = load_run(run_dir)
    assert run.class_names == ["background", "liver"]
    assert set(run.record["split"]["val"]).isdisjoint(run.record["split"]["train"])
    history = read_history(run_dir / "history.csv")
    assert [row["step"] for row in history] == [8, 16, 24]
    # Validation is reported per modality (from dataset.json metadata only).
    assert {"val_dice_liver_CT", "val_dice_liver_MR", "val_score_CT", "val_score_MR", "seg_loss", "d_loss"} <= set(history[0])
    best = max(history, key=lambda row: row["val_score"])
    assert summary["best_step"] == best["step"]
    # Without Keras's progress bar (verbose=0) a line per epoch says where the run is and how long it has left.
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split(";")[0] for line in progress] == ["step 8/24", "step 16/24", "step 24/24"]
    assert all("seg_loss " in line and "val_score " in line and " s/step, ~" in line for line in progress)
    assert f"(best {summary['best_val_score']:.2f} at {summary['best_step']})" in progress[-1]
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("*.index"))
    assert checkpoints == ["ckpt-16.index", "ckpt-20.index", "ckpt-24.index"]  # the last 3 kept
    assert load_model(run_dir / "best_generator.keras").output_shape == (None, 32, 32, 2)
    # The recorded config reproduces the run's settings.
    again = build_run_config(config_file=run_dir / "config.json")
    assert again == run.config


def test_resume_after_sigkill_ends_with_the_uninterrupted_weights(reference_run, tiny_dataset, tmp_path):
    reference_dir, _, _ = reference_run
    run_dir = tmp_path / "killed"
    flags = ["--data", str(tiny_dataset), "--out", str(run_dir), "--steps", "24", "--val-every", "8",
             "--checkpoint-every", "4", "--verbose", "0", *TINY_FLAGS]
    process = cdseg("train", *flags)
    deadline = time.time() + 240
    while not (run_dir / "checkpoints" / "ckpt-8.index").exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The step restore will use: TensorFlow's `checkpoint` state file is updated only after a checkpoint's
    # files are complete, so a kill between the two correctly falls back to the previous checkpoint.
    latest = int(tf.train.latest_checkpoint(str(run_dir / "checkpoints")).rsplit("-", 1)[1])
    assert 4 <= latest < 24, "the run finished before it could be killed: the test proves nothing"

    resumed = cdseg("train", "--resume", str(run_dir), "--verbose", "0")
    output, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, output
    assert f"resuming at step {latest} of 24" in output
    assert json.loads((run_dir / "summary.json").read_text())["steps_done"] == 24
    assert_same_weights(generator_weights(run_dir), generator_weights(reference_dir))
    assert [row["step"] for row in read_history(run_dir / "history.csv")] == [8, 16, 24]


def test_sigint_saves_a_checkpoint_and_stops_cleanly(tiny_dataset, tmp_path):
    run_dir = tmp_path / "interrupted"
    process = cdseg(
        "train", "--data", str(tiny_dataset), "--out", str(run_dir), "--steps", "100000", "--val-every", "50",
        "--checkpoint-every", "1000", "--verbose", "0", *TINY_FLAGS,
    )
    deadline = time.time() + 240
    while not (run_dir / "history.csv").exists():  # past the first epoch: the loop is running
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 50 <= summary["steps_done"] < 100000
    assert (run_dir / "checkpoints" / f"ckpt-{summary['steps_done']}.index").exists()
    assert f"cdseg train --resume {run_dir}" in output


def test_two_cpu_replicas_give_the_single_device_weights(tiny_dataset, tmp_path):
    single = train(tiny_config(tiny_dataset, steps=3, val_every=3, batch_size=4), tmp_path / "one", verbose=0)
    mirrored = train(
        tiny_config(tiny_dataset, steps=3, val_every=3, batch_size=2, cpu_replicas=2), tmp_path / "two", verbose=0
    )
    assert single["global_batch_size"] == mirrored["global_batch_size"] == 4
    assert mirrored["num_replicas"] == 2
    assert_same_weights(generator_weights(tmp_path / "two"), generator_weights(tmp_path / "one"), atol=1e-4)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_training_with_two_local_processes(tiny_dataset, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(
            cdseg(
                "train", "--data", str(tiny_dataset), "--out", str(tmp_path / f"w{index}"), "--steps", "4",
                "--val-every", "2", "--checkpoint-every", "2", "--strategy", "multiworker", "--verbose", "0",
                *TINY_FLAGS, env=env,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert "CollectiveAllReduceStrategy with 2 replica(s): global batch 2 x 2 = 4" in outputs[0]
    chief = generator_weights(tmp_path / "w0")
    worker = generator_weights(tmp_path / "w1" / "worker_1")
    assert_same_weights(chief, worker, atol=0)


def test_non_finite_loss_stops_with_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(TrainingError, match=r"became nan at step \d+; training stopped"):
        train(tiny_config(tiny_dataset, steps=20, val_every=10, checkpoint_every=2, learning_rate=1e30), tmp_path / "nan", verbose=0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--modalities", "PET"], "no training cases of modality ['PET']"),
        (["--context", "9"], "Invalid value for '--context'"),
    ],
)
def test_bad_settings_fail_before_training_with_exit_2(tiny_dataset, tmp_path, extra, message):
    result = CliRunner().invoke(
        cli, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--steps", "2", *TINY_FLAGS, *extra]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_dataset_without_foreground_is_rejected(tmp_path):
    from keras_cdseg.data.dataset import Case, write_dataset_json
    from keras_cdseg.data.nifti_io import save_array

    rng = np.random.default_rng(0)
    cases = []
    for name in ("a", "b"):
        save_array(rng.random((20, 20, 6)).astype("float32"), np.diag([2.0, 2.0, 4.0, 1.0]), tmp_path / "data" / "imagesTr" / f"{name}.nii.gz")
        save_array(np.zeros((20, 20, 6), "uint8"), np.diag([2.0, 2.0, 4.0, 1.0]), tmp_path / "data" / "labelsTr" / f"{name}.nii.gz")
        cases.append(Case(name, tmp_path / "data" / "imagesTr" / f"{name}.nii.gz", tmp_path / "data" / "labelsTr" / f"{name}.nii.gz", "CT"))
    write_dataset_json(tmp_path / "data", "empty", {"background": 0, "liver": 1}, cases, [])
    with pytest.raises(InputError, match="no foreground voxels"):
        train(tiny_config(tmp_path / "data", steps=2, val_fraction=0.0), tmp_path / "run", verbose=0)


def test_resume_and_out_rules(tiny_dataset, reference_run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output
    reference_dir, _, _ = reference_run
    result = runner.invoke(cli, ["train", "--data", str(tiny_dataset), "--out", str(reference_dir), *TINY_FLAGS])
    assert result.exit_code == 2 and "already holds a run" in result.output
    result = runner.invoke(cli, ["train", "--resume", str(reference_dir), "--context", "2"])
    assert result.exit_code == 2 and "cannot be changed when resuming" in result.output


def test_unsupported_xla_combinations_are_refused_before_training(tiny_dataset, tmp_path):
    result = CliRunner().invoke(
        cli, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--steps", "2", "--jit-compile",
              "--cpu-replicas", "2", *TINY_FLAGS],  # fmt: skip
    )
    assert result.exit_code == 2 and "XLA cannot compile a step mirrored over CPU devices" in result.output


def test_deterministic_runs_turn_onednn_off_before_tensorflow_starts(tiny_dataset, tmp_path):
    """`--deterministic` in a fresh process: the child's TensorFlow starts with oneDNN off and op determinism on,
    the run records the setting, and a second run gives the same weights to the bit."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS")}
    runs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        process = cdseg("train", "--data", str(tiny_dataset), "--out", str(run_dir), "--steps", "6", "--deterministic",
                        *TINY_FLAGS, env=env)  # fmt: skip
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        runs.append(run_dir)
    assert load_run(runs[0]).config.train.deterministic is True
    first, second = generator_weights(runs[0]), generator_weights(runs[1])
    assert len(first) == len(second) and all(np.array_equal(x, y) for x, y in zip(first, second))


def test_deterministic_is_refused_where_it_cannot_hold(tiny_dataset, tmp_path, monkeypatch):
    from keras_cdseg.training import determinism

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)  # this process imported TensorFlow with oneDNN on
    result = CliRunner().invoke(
        cli, ["train", "--data", str(tiny_dataset), "--out", str(tmp_path / "run"), "--steps", "2", "--deterministic", *TINY_FLAGS]
    )
    assert result.exit_code == 2 and "set TF_ENABLE_ONEDNN_OPTS=0 and TF_DETERMINISTIC_OPS=1 before importing" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="TensorFlow backend only"):
        determinism.prepare(TrainConfig(deterministic=True), "jax")
    determinism.prepare(TrainConfig(), "jax")  # not asked for: nothing to refuse
