"""keras_cdseg: cross-domain (CT + MR) segmentation with pre-norm U-Nets and a conditional adversarial loss.

Public names are re-exported here explicitly. They are resolved on first access so that the pure-numpy
parts (metrics, data import) do not pay for importing TensorFlow.
"""

import importlib

__version__ = "0.2.0"

# public name -> defining module
_EXPORTS = {
    "InputError": "keras_cdseg.errors",
    "DataConfig": "keras_cdseg.config",
    "ModelConfig": "keras_cdseg.config",
    "PreNormConvBlock": "keras_cdseg.layers.pre_norm_conv_block",
    "ConditionalDiscriminator": "keras_cdseg.layers.conditional_discriminator",
    "build_segmenter": "keras_cdseg.models.segmenter",
    "build_discriminator": "keras_cdseg.models.segmenter",
    "CrossDomainModel": "keras_cdseg.models.cross_domain_model",
    "DiceScore": "keras_cdseg.models.dice_score",
    "AttentionGate": "keras_cdseg.layers.attention_gate",
    "ConditionalConvBlock": "keras_cdseg.layers.conditional_conv_block",
    "ModalityClassifier": "keras_cdseg.layers.modality_classifier",
    "build_attention_segmenter": "keras_cdseg.models.attention_unet",
    "build_conditional_segmenter": "keras_cdseg.models.conditional_segmenter",
    "ConditionalDomainModel": "keras_cdseg.models.conditional_domain_model",
    "load_model": "keras_cdseg.models.saving",
    "TrainConfig": "keras_cdseg.config",
    "RunConfig": "keras_cdseg.config",
    "train": "keras_cdseg.training.trainer",
    "load_run": "keras_cdseg.run_dir",
    "prepare_volume": "keras_cdseg.data.preprocessing",
    "load_dataset": "keras_cdseg.data.dataset",
    "write_synthetic_dataset": "keras_cdseg.data.phantoms.synthetic",
    "segment_volume": "keras_cdseg.inference.volume",
    "keras_predictor": "keras_cdseg.inference.volume",
    "compute_segmentation_metrics": "keras_cdseg.metrics.segmentation_metrics",
    "keep_largest_component": "keras_cdseg.inference.postprocessing",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keras_cdseg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
