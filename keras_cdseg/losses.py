"""Per-example losses for the segmenter and the conditional discriminator.

Every function returns one value per example (shape `[B]`); the training step sums them and divides by
the *global* batch size, which is what makes gradients identical on one device and on N replicas.
"""

from keras import ops


def segmentation_cross_entropy(y_true, y_pred, epsilon=1e-7):
    """Pixel-wise categorical cross-entropy averaged over each example's pixels.

    Args:
        y_true: `[B, H, W, C]` one-hot reference.
        y_pred: `[B, H, W, C]` softmax probabilities.
        epsilon: float. Probabilities are clipped to `[epsilon, 1 - epsilon]` before the log.

    Returns:
        `[B]` float32 losses.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), epsilon, 1.0 - epsilon)
    per_pixel = -ops.sum(y_true * ops.log(y_pred), axis=-1)
    return ops.mean(per_pixel, axis=(1, 2))


def soft_dice_loss(y_true, y_pred, smooth=1.0):
    """One minus the soft Dice of each foreground class, averaged over classes, per example (nnU-Net's
    CE + Dice pairs this with `segmentation_cross_entropy`: Dice weighs a small organ like a large one).

    Args:
        y_true: `[B, H, W, C]` one-hot reference; class 0 is background and is not scored.
        y_pred: `[B, H, W, C]` softmax probabilities.
        smooth: float. Added to numerator and denominator (in pixels), so a class absent from both the
            reference and the prediction scores Dice 1 and a few stray pixels cost little. Defaults to 1.

    Returns:
        `[B]` float32 losses in [0, 1].
    """
    y_true = ops.cast(y_true, "float32")[..., 1:]
    y_pred = ops.cast(y_pred, "float32")[..., 1:]
    intersection = ops.sum(y_true * y_pred, axis=(1, 2))
    total = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - ops.mean(dice, axis=-1)


SEGMENTATION_LOSSES = ("ce", "ce_dice")


def segmentation_loss(y_true, y_pred, loss="ce"):
    """Per-example segmentation loss by name: "ce" (the paper's) or "ce_dice" (cross-entropy + soft Dice). `[B]`."""
    if loss == "ce":
        return segmentation_cross_entropy(y_true, y_pred)
    if loss == "ce_dice":
        return segmentation_cross_entropy(y_true, y_pred) + soft_dice_loss(y_true, y_pred)
    raise ValueError(f"`loss` must be one of {SEGMENTATION_LOSSES}. Received: loss={loss!r}")


def discriminator_loss(real_logits, fake_logits):
    """DCGAN critic loss: sigmoid cross-entropy of real pairs against 1 plus fake pairs against 0. `[B]`."""
    real = _sigmoid_cross_entropy(ops.ones_like(real_logits), real_logits)
    fake = _sigmoid_cross_entropy(ops.zeros_like(fake_logits), fake_logits)
    return ops.reshape(real + fake, (-1,))


def generator_adversarial_loss(fake_logits):
    """Non-saturating generator loss `−log D(x ⊕ ŷ)` (fake pairs scored against 1). `[B]`."""
    return ops.reshape(_sigmoid_cross_entropy(ops.ones_like(fake_logits), fake_logits), (-1,))


def _sigmoid_cross_entropy(labels, logits):
    # max(l, 0) − l·z + log(1 + exp(−|l|)): the overflow-free form for any logit.
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "float32")
    return ops.relu(logits) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))
