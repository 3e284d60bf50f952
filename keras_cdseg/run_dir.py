"""The run directory written by `cdseg train` and read by evaluation, export and prediction.

    RUN_DIR/
      config.json            {"run": RunConfig, "labels": {name: value}, "class_names": [...], "split": {...}, ...}
      checkpoints/           tf.train.Checkpoint of both networks, both optimizers and the step (last K kept)
      logs/                  TensorBoard event files (train scalars, validation scalars and images)
      history.csv            one row per validation: step, training losses, validation metrics
      best_generator.keras   generator with the best validation score so far
      last_generator.keras   generator at the last finished step
      summary.json           final state: steps done, best score and step, wall time, why it stopped
"""

import dataclasses
from pathlib import Path

from keras_cdseg.config import RunConfig, load_json
from keras_cdseg.errors import InputError

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"
BEST_GENERATOR = "best_generator.keras"
LAST_GENERATOR = "last_generator.keras"
SUMMARY_FILE = "summary.json"
CACHE_DIR = "cache"


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A finished or running training run, as read from its directory.

    Args:
        root: Path. The run directory.
        config: RunConfig. The effective configuration.
        labels: dict. Label name -> value, including background 0.
        class_names: list of str. Names indexed by class value (the generator's output channels).
        record: dict. The whole config.json content.
    """

    root: Path
    config: RunConfig
    labels: dict
    class_names: list
    record: dict

    def generator_path(self, which="best"):
        """Path of the best (falling back to last) or last generator; InputError if there is none."""
        if which not in ("best", "last"):
            raise InputError(self.root, f"which must be 'best' or 'last'. Received: {which!r}")
        names = [BEST_GENERATOR, LAST_GENERATOR] if which == "best" else [LAST_GENERATOR]
        for name in names:
            if (self.root / name).is_file():
                return self.root / name
        raise InputError(self.root, f"run directory has no trained generator ({' or '.join(names)})")


def is_run_dir(path):
    return (Path(path) / CONFIG_FILE).is_file()


def load_run(run_dir):
    """Reads RUN_DIR/config.json into a `RunInfo`; InputError if it is not a run directory."""
    root = Path(run_dir)
    if not root.is_dir():
        raise InputError(root, "run directory not found")
    if not is_run_dir(root):
        raise InputError(root, f"not a run directory (no {CONFIG_FILE})")
    record = load_json(root / CONFIG_FILE)
    if "run" not in record or "labels" not in record:
        raise InputError(root / CONFIG_FILE, "not a cdseg run config (missing 'run' or 'labels')")
    config = RunConfig.from_dict(record["run"], source=root / CONFIG_FILE)
    labels = {str(k): int(v) for k, v in record["labels"].items()}
    class_names = record.get("class_names") or _class_names(labels)
    return RunInfo(root=root, config=config, labels=labels, class_names=list(class_names), record=record)


def _class_names(labels):
    by_value = {v: k for k, v in labels.items()}
    return [by_value.get(i, f"class{i}") for i in range(max(labels.values()) + 1)]
