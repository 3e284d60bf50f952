"""Table 3: how sparse the blocks' responses are, per block and overall, per modality.

Sparsity here is the paper's measure: the fraction of responses that *pass* to the next layer, i.e. that
are positive after the block's PReLU. Counting is numpy; only `compute_sparsity` runs the model (and
imports Keras, lazily).
"""

import numpy as np


def count_positive_responses(responses):
    """Counts positive entries per block.

    Args:
        responses: mapping block name -> array of responses (any shape).

    Returns:
        dict block name -> `(num_positive, num_responses)` as Python ints.
    """
    counts = {}
    for name, values in responses.items():
        values = np.asarray(values)
        counts[name] = (int(np.count_nonzero(values > 0)), int(values.size))
    return counts


def add_counts(total, counts):
    """Adds `counts` (block -> (positive, total)) into `total` in place and returns it."""
    for name, (positive, size) in counts.items():
        previous_positive, previous_size = total.get(name, (0, 0))
        total[name] = (previous_positive + positive, previous_size + size)
    return total


def summarize_sparsity(counts):
    """Fractions of passing responses from accumulated counts.

    Args:
        counts: mapping block name -> `(num_positive, num_responses)`, in block order.

    Returns:
        dict with `"per_block"` (block -> fraction), `"overall"` (all responses of all blocks pooled, so
        large high-resolution blocks weigh more), `"mean_over_blocks"` (each block weighs the same) and
        `"num_responses"`. A block with no responses has fraction None; with no responses at all every
        summary value is None.
    """
    per_block = {name: (positive / size if size else None) for name, (positive, size) in counts.items()}
    num_positive = sum(positive for positive, _ in counts.values())
    num_responses = sum(size for _, size in counts.values())
    fractions = [value for value in per_block.values() if value is not None]
    return {
        "per_block": per_block,
        "overall": num_positive / num_responses if num_responses else None,
        "mean_over_blocks": float(np.mean(fractions)) if fractions else None,
        "num_responses": num_responses,
    }


def compute_sparsity(generator, slices_by_modality, block_names=None, batch_size=16):
    """Table 3 for one generator: fraction of positive block responses per block, per modality and pooled.

    Args:
        generator: functional `keras.Model` built by this package (or loaded from a `.keras` file).
        slices_by_modality: mapping modality name (e.g. "CT") -> prepared input slices, one array
            `[N, H, W, 2T+1]` or an iterable of such batches (e.g. a generator over cases).
        block_names: list of str or None. Blocks to measure; None measures every conv block
            (`responses.find_response_blocks`).
        batch_size: int. Slices per forward pass. Defaults to `16`.

    Returns:
        A JSON-ready dict:
        `{"blocks": [names], "per_modality": {modality: summary}, "all": summary}`, where each summary is
        `summarize_sparsity(...)` plus `"num_slices"`, and `"all"` pools every modality.

    Example:
    >>> result = compute_sparsity(generator, {"CT": ct_slices, "MR": mr_slices})  # doctest: +SKIP
    >>> result["per_modality"]["CT"]["overall"], result["per_modality"]["MR"]["per_block"]["down1"]  # doctest: +SKIP
    """
    from keras_cdseg.analysis import responses

    block_names = list(block_names) if block_names is not None else responses.find_response_blocks(generator)
    model = responses.build_response_model(generator, block_names)
    per_modality = {}
    pooled = {name: (0, 0) for name in block_names}
    num_slices_total = 0
    for modality, slices in slices_by_modality.items():
        counts = {name: (0, 0) for name in block_names}
        num_slices = 0
        for batch_responses in responses.iter_block_responses(model, slices, batch_size):
            batch_counts = count_positive_responses(batch_responses)
            add_counts(counts, batch_counts)
            add_counts(pooled, batch_counts)
            num_slices += len(next(iter(batch_responses.values())))
        per_modality[modality] = {**summarize_sparsity(counts), "num_slices": num_slices}
        num_slices_total += num_slices
    return {
        "blocks": block_names,
        "per_modality": per_modality,
        "all": {**summarize_sparsity(pooled), "num_slices": num_slices_total},
    }
