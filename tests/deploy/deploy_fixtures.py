"""Builders shared by the deployment tests: a tiny run directory and NIfTI volumes in any orientation.

Imported by tests/deploy directly and by tests/cli and tests/evaluation through a sys.path entry (test
folders have no __init__.py).
"""

import json
from pathlib import Path

import nibabel as nib
import numpy as np

IMAGE_SIZE = 32


def make_run_dir(root, target_spacing_mm=4.0, context=1, seed=0, data_dir="unused", num_classes=2):
    """A run directory as `cdseg train` writes it, with an untrained tiny generator as best_generator.keras."""
    import keras

    from keras_cdseg.config import DataConfig, ModelConfig, RunConfig
    from keras_cdseg.models.segmenter import build_segmenter

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = build_segmenter((IMAGE_SIZE, IMAGE_SIZE, 2 * context + 1), num_classes=num_classes, base_filters=4, depth=2)
    model.save(root / "best_generator.keras")
    data = DataConfig(image_size=IMAGE_SIZE, target_spacing_mm=target_spacing_mm, context=context)
    model_config = ModelConfig(num_classes=num_classes, base_filters=4, depth=2)
    run = RunConfig(data_dir=str(data_dir), data=data, model=model_config)
    class_names = ["background", "liver", "spleen", "kidney"][:num_classes]
    record = {"run": run.to_dict(), "labels": {n: i for i, n in enumerate(class_names)}, "class_names": class_names}
    (root / "config.json").write_text(json.dumps(record, indent=2))
    return root


def affine_for(axcodes, spacing_mm, shape, rotation_deg=0.0, origin_mm=(0.0, 0.0, 0.0)):
    """Voxel -> RAS affine of a grid stored with `axcodes` (e.g. "LPS"), centred on `origin_mm`, optionally
    rotated about the superior axis (oblique)."""
    directions = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    rotation = np.eye(3)
    angle = np.deg2rad(rotation_deg)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    linear = np.zeros((3, 3))
    for column, code in enumerate(axcodes):
        axis, sign = directions[code]
        linear[axis, column] = sign * spacing_mm[column]
    linear = rotation @ linear
    affine = np.eye(4)
    affine[:3, :3] = linear
    centre = (np.asarray(shape) - 1) / 2
    affine[:3, 3] = np.asarray(origin_mm) - linear @ centre
    return affine


def blob_image(shape, affine, radii_mm=(30.0, 22.0, 26.0), centre_mm=(6.0, -4.0, 3.0), seed=0):
    """int16 CT-like image: an ellipsoid (~200 HU) in world coordinates on a noisy -100 HU background."""
    rng = np.random.default_rng(seed)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    inside = (((world - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2).sum(axis=1) <= 1
    image = np.where(inside, 200.0, -100.0) + rng.normal(0, 5, len(inside))
    return image.reshape(shape).astype(np.int16), inside.reshape(shape)


def write_nifti(path, data, affine, qform_code=1, sform_code=1, dtype=None):
    """Writes a NIfTI with explicit qform/sform codes (sform_code 0 leaves only the qform)."""
    data = np.asarray(data)
    img = nib.Nifti1Image(data.astype(dtype or data.dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine if sform_code else None, code=sform_code)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def threshold_predictor(threshold=0.5):
    """A numpy predictor: P(liver) = 1 where the centre channel exceeds `threshold` (exactly equivariant)."""

    def predict(slices):
        centre = slices[..., slices.shape[-1] // 2]
        foreground = (centre > threshold).astype(np.float32)
        return np.stack([1.0 - foreground, foreground], axis=-1)

    return predict


def threshold_card(image_size=IMAGE_SIZE, target_spacing_mm=4.0, context=1):
    from keras_cdseg.config import DataConfig
    from keras_cdseg.model_card import ModelCard

    config = DataConfig(image_size=image_size, target_spacing_mm=target_spacing_mm, context=context)
    return ModelCard(config, {"background": 0, "liver": 1}, ["background", "liver"], (1,), {"source": {"kind": "test"}})


def make_threshold_predictor(card, threshold=0.5):
    """A real `Predictor` whose network is `threshold_predictor`; records the largest batch it was given."""
    from keras_cdseg.inference.predictors import Predictor

    class ThresholdPredictor(Predictor):
        max_batch = 0

        def _predict(self, slices):
            self.max_batch = max(self.max_batch, len(slices))
            return threshold_predictor(threshold)(slices)

    size = card.data_config.image_size
    return ThresholdPredictor("threshold", "threshold", card, (size, size, card.data_config.num_channels))
