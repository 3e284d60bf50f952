"""Every `Example:` in the public layers, models and metrics docstrings runs and prints what it says."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_cdseg.errors",
    "keras_cdseg.layers.pre_norm_conv_block",
    "keras_cdseg.layers.conditional_discriminator",
    "keras_cdseg.layers.attention_gate",
    "keras_cdseg.layers.conditional_conv_block",
    "keras_cdseg.layers.modality_classifier",
    "keras_cdseg.models.segmenter",
    "keras_cdseg.models.dice_score",
    "keras_cdseg.models.cross_domain_model",
    "keras_cdseg.inference.postprocessing",
    "keras_cdseg.training.trainer",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
