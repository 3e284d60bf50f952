"""Validation during training: whole held-out volumes through the same inference path as `cdseg predict`,
with per-class Dice and the CHAOS-style volume metrics reported per modality.

The modality (dataset metadata) only groups the numbers; the network never receives it. The validation
score that selects the best generator is the mean over modalities of the mean 0–100 overall score (VO, RVD,
ASSD, RMSD, MSSD) of the foreground classes, so a modality with more cases does not dominate.
"""

import re

import keras
import numpy as np

from keras_cdseg.inference.volume import keras_predictor, segment_prepared
from keras_cdseg.metrics.segmentation_metrics import compute_segmentation_metrics
from keras_cdseg.inference.postprocessing import keep_largest_component


def pick_validation_cases(case_ids, modality_of, max_per_modality):
    """The first `max_per_modality` cases of each modality, in the given (deterministic) order."""
    picked, counts = [], {}
    for case_id in case_ids:
        group = modality_of.get(case_id)
        if counts.get(group, 0) < max_per_modality:
            picked.append(case_id)
            counts[group] = counts.get(group, 0) + 1
    return picked


def _key(text):
    return re.sub(r"[^0-9A-Za-z]+", "_", str(text)).strip("_")


class ValidationCallback(keras.callbacks.Callback):
    """At each epoch end: segments the validation volumes, adds `val_*` entries to the logs, keeps the best
    generator.

    Args:
        generator: the `keras.Model` being trained.
        data: `TrainingData`.
        context: int. T of the input.
        control: `StepControl` (global step, best score, stop state).
        max_cases_per_modality: int.
        save_best: callable(step) writing the best generator, or None (non-chief workers).
        writer: `tf.summary` writer for image summaries, or None.
        largest_component_classes: class values post-processed to their largest 3D component.
    """

    def __init__(
        self,
        generator,
        data,
        context,
        control,
        max_cases_per_modality,
        save_best=None,
        writer=None,
        largest_component_classes=(1,),
        batch_size=16,
    ):
        super().__init__()
        self.generator = generator
        self.data = data
        self.context = context
        self.control = control
        self.save_best = save_best
        self.writer = writer
        self.largest_component_classes = list(largest_component_classes)
        self.batch_size = batch_size
        self.case_ids = pick_validation_cases(data.val_ids, data.modality_of, max_cases_per_modality)
        self._predict = None

    def on_epoch_end(self, epoch, logs=None):
        if self.control.stopped or not self.case_ids:
            return
        results = self.evaluate()
        if logs is not None:
            logs.update(results)
        if results["val_score"] > self.control.best_score:
            self.control.best_score = results["val_score"]
            self.control.best_step = self.control.step
            if self.save_best is not None:
                self.save_best(self.control.step)

    def evaluate(self):
        if self._predict is None:
            self._predict = keras_predictor(self.generator)
        cache, class_names = self.data.cache, self.data.class_names
        rows, previews = [], {}
        for case_id in self.case_ids:
            image = np.asarray(cache.image(case_id))
            label = np.asarray(cache.label(case_id))
            pred = segment_prepared(self._predict, image, self.context, self.batch_size)
            if self.largest_component_classes:
                pred = keep_largest_component(pred, classes=self.largest_component_classes)
            spacing = cache.entry(case_id).geometry.prepared_spacing_mm
            spacing_sw = (spacing[2], spacing[0], spacing[1])  # prepared arrays are [slice, H, W]
            modality = self.data.modality_of.get(case_id)
            for value in range(1, len(class_names)):
                metrics = compute_segmentation_metrics(label == value, pred == value, spacing_sw)
                rows.append((modality, class_names[value], metrics["dice"], metrics["scores"]["overall"]))
            previews.setdefault(modality, (image, label, pred))
        if self.writer is not None:
            self._write_previews(previews)
        return summarize_validation(rows)

    def _write_previews(self, previews):
        import tensorflow as tf

        with self.writer.as_default(step=self.control.step):
            for modality, (image, label, pred) in previews.items():
                index = int(np.argmax((label > 0).sum(axis=(1, 2))))
                scale = max(len(self.data.class_names) - 1, 1)
                strip = np.concatenate([image[index], label[index] / scale, pred[index] / scale], axis=1)
                tf.summary.image(f"val_{_key(modality or 'all')}/input_label_prediction", strip[None, ..., None])
        self.writer.flush()


def summarize_validation(rows):
    """Aggregates (modality, class, dice, score) rows into flat `val_*` log entries."""
    results = {}
    modalities = sorted({row[0] for row in rows}, key=str)
    class_names = list(dict.fromkeys(row[1] for row in rows))
    for name in class_names:
        results[f"val_dice_{_key(name)}"] = float(np.mean([r[2] for r in rows if r[1] == name]))
    per_modality_scores = []
    for modality in modalities:
        mine = [r for r in rows if r[0] == modality]
        score = float(np.mean([r[3] for r in mine]))
        per_modality_scores.append(score)
        if modality is not None:
            suffix = _key(modality)
            results[f"val_score_{suffix}"] = score
            for name in class_names:
                results[f"val_dice_{_key(name)}_{suffix}"] = float(np.mean([r[2] for r in mine if r[1] == name]))
    results["val_score"] = float(np.mean(per_modality_scores))
    return results
