import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cdseg")
class DiceScore(keras.metrics.Metric):
    """Per-class Dice of hard (arg-max) predictions, accumulated over every pixel seen.

    Intersections and sizes are summed over batches (and replicas) before the ratio is taken, so the
    result is the Dice of the whole evaluated set, not a mean of per-batch Dice values. A class absent
    from both reference and prediction scores 1 (nothing to find, nothing found).

    `result()` returns a dict `{"dice_<class name>": value}` so training logs show one entry per class.

    Args:
        num_classes: int. Number of classes of the one-hot reference.
        class_names: list of str or None. Names used in the result keys; defaults to `class0`, `class1`, ...
        name: str. Metric name. Defaults to `"dice"`.

    Example:
    >>> import numpy as np
    >>> metric = DiceScore(num_classes=2, class_names=["background", "liver"])
    >>> y = np.eye(2)[np.array([[[0, 1], [1, 1]]])]
    >>> metric.update_state(y, y)
    >>> {k: float(v) for k, v in metric.result().items()}
    {'dice_background': 1.0, 'dice_liver': 1.0}
    """

    def __init__(self, num_classes, class_names=None, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must have num_classes={num_classes} entries. Received: class_names={class_names}"
            )
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [f"class{i}" for i in range(num_classes)]
        self.intersection = self.add_variable((num_classes,), initializer="zeros", name="intersection")
        self.total = self.add_variable((num_classes,), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        true_onehot = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes, dtype="float32")
        pred_onehot = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="float32")
        axes = tuple(range(len(true_onehot.shape) - 1))
        self.intersection.assign_add(ops.sum(true_onehot * pred_onehot, axis=axes))
        self.total.assign_add(ops.sum(true_onehot + pred_onehot, axis=axes))

    def result(self):
        dice = ops.where(self.total > 0, 2.0 * self.intersection / ops.maximum(self.total, 1.0), 1.0)
        return {f"dice_{name}": dice[i] for i, name in enumerate(self.class_names)}

    def reset_state(self):
        self.intersection.assign(ops.zeros((self.num_classes,)))
        self.total.assign(ops.zeros((self.num_classes,)))

    def get_config(self):
        return {"num_classes": self.num_classes, "class_names": self.class_names, "name": self.name, "dtype": self.dtype}
