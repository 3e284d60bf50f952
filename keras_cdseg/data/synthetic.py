"""Deprecated alias of `keras_cdseg.data.phantoms.synthetic` (moved in 0.2; this path is removed in 0.3)."""

from keras_cdseg._moved import forward_to

__getattr__ = forward_to(__name__, "keras_cdseg.data.phantoms.synthetic")
