"""What every resumable experiment (`runner`: the ablation, `cross_domain`: the real-scan benchmark) shares:
training a run or picking it up where it stopped, reading its JSON records, and the messages about them."""

import json
import shutil
import time
from pathlib import Path

from keras_cdseg.config import RunConfig
from keras_cdseg.errors import InputError, TrainingError
from keras_cdseg.io_utils import write_json_atomic


def train_or_resume(run_config, train_dir, verbose=0, log=None):
    """Trains a run, resumes it from its last checkpoint, or reuses its finished training.

    A run directory without a config (killed before `train` wrote it) holds nothing to keep and is removed.

    Returns:
        `(summary, seconds)`: the run's summary.json content (its "status" is "interrupted" after Ctrl-C) and
        the training time of this call (None when the training was already finished).

    Raises:
        TrainingError: a non-finite loss (from `train`).
    """
    import keras

    from keras_cdseg.run_dir import SUMMARY_FILE, is_run_dir, load_run
    from keras_cdseg.training.trainer import train

    train_dir = Path(train_dir)
    summary = read_json(train_dir / SUMMARY_FILE)
    if summary and summary.get("status") == "finished":
        return summary, None
    resume = is_run_dir(train_dir)
    if resume:
        run_config = load_run(train_dir).config
    elif train_dir.exists():
        shutil.rmtree(train_dir)
    keras.backend.clear_session()
    started = time.perf_counter()
    summary = train(run_config, train_dir, resume=resume, verbose=verbose, log=log)
    return summary, round(time.perf_counter() - started, 1)


def train_for_result(run_config, root, base_result, verbose=0, log=None, result_file="result.json"):
    """`train_or_resume` for one experiment run at `root` (its run directory is `root/train`).

    Returns:
        `(summary, timings, None)` when the training finished (timings: `train_s` when this call trained), or
        `(None, None, result)` with the result the run ends with: a failed training (non-finite loss) is
        written to `root/result_file` as `base_result` + status "failed"; an interrupted one is
        `{"status": "interrupted"}` and nothing is written (it resumes).
    """
    try:
        summary, seconds = train_or_resume(run_config, Path(root) / "train", verbose, log)
    except TrainingError as e:
        result = base_result | {"status": "failed", "error": str(e)}
        write_json_atomic(Path(root) / result_file, result)
        return None, None, result
    if summary["status"] != "finished":
        return None, None, {"status": "interrupted"}
    return summary, ({} if seconds is None else {"train_s": seconds}), None


def read_json(path):
    """The JSON content of `path`, or None when it is missing or half-written."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def clock(seconds):
    """`H:MM:SS` of a duration in seconds."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def resolved_run_config(run_config):
    """A recorded run_config dict (a benchmark's claim or results) as the config classes read it today, keeping
    its own sections: a field added since appears at its default, which is what those runs used, so records of
    an earlier version compare equal to today's. A dict the classes reject (an unknown field) is returned as is,
    to be reported as a difference."""
    if not isinstance(run_config, dict):
        return run_config
    try:
        resolved = RunConfig.from_dict({**run_config, "data_dir": "-"}).to_dict()
    except (InputError, TypeError):
        return run_config
    return {name: resolved[name] for name in run_config}


def differences(old, new):
    """`key: old vs new` for each key whose value differs (or the two values, when they are not dicts)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{old!r} vs {new!r}"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in keys)
