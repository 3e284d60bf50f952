"""Fig. 2: distributions of single kernels' responses on CT vs MR, for a pre-norm and a post-norm model.

A kernel is one output channel of one conv block; its response is that channel of the block's output
(after PReLU, what the next layer receives, see `responses`). The paper's observation: pre-norm keeps the
modalities' response distributions apart, post-norm pushes them together. Each kernel's histograms share
bin edges across modalities and come with their overlap (1 = identical distributions, 0 = disjoint).
Sampling is numpy and seeded; only `collect_kernel_responses` runs the model, only
`plot_response_histograms` imports matplotlib.
"""

import numpy as np

from keras_cdseg.io_utils import atomic_path


def sample_kernels(block_channels, num_kernels=6, seed=0):
    """Randomly samples (block, channel) pairs, without repetition, reproducibly.

    Pass the same `block_channels` and seed for a pre-norm and a post-norm model of one architecture and
    both get the same kernel positions.

    Args:
        block_channels: mapping block name -> number of output channels, in block order (see
            `block_channels_of`).
        num_kernels: int. How many kernels; capped at the number available. Defaults to `6`.
        seed: int. Seed of the numpy generator. Defaults to `0`.

    Returns:
        list of `{"block": name, "channel": int}`, ordered by block order then channel.
    """
    pairs = [(name, channel) for name, count in block_channels.items() for channel in range(count)]
    if not pairs:
        raise ValueError("There are no kernels to sample from. Received: block_channels={}")
    chosen = np.random.default_rng(seed).choice(len(pairs), size=min(num_kernels, len(pairs)), replace=False)
    return [{"block": pairs[i][0], "channel": int(pairs[i][1])} for i in sorted(chosen)]


def block_channels_of(generator, block_names=None):
    """Mapping block name -> output channels for the generator's conv blocks (all of them by default)."""
    from keras_cdseg.analysis import responses

    block_names = block_names if block_names is not None else responses.find_response_blocks(generator)
    return {name: int(generator.get_layer(name).filters) for name in block_names}


def kernel_key(kernel):
    """`"<block>:<channel>"`, the key of a kernel in response and histogram dicts."""
    return f"{kernel['block']}:{kernel['channel']}"


def collect_kernel_responses(generator, slices_by_modality, kernels, max_responses=100_000, seed=0, batch_size=16):
    """Responses of the chosen kernels over all slices of each modality.

    Memory stays bounded: beyond `max_responses` values per kernel and modality, a uniform random sample
    of that size is kept (every response equally likely, whatever the batch it came from).

    Args:
        generator: functional `keras.Model` of this package.
        slices_by_modality: mapping modality -> prepared slices, `[N, H, W, 2T+1]` or an iterable of batches.
        kernels: list of `{"block", "channel"}` (see `sample_kernels`).
        max_responses: int. Kept values per kernel and modality. Defaults to `100_000`.
        seed: int. Seed of the subsampling. Defaults to `0`.
        batch_size: int. Slices per forward pass. Defaults to `16`.

    Returns:
        dict modality -> {kernel key -> float32 1-D array}.
    """
    from keras_cdseg.analysis import responses

    block_names = sorted({kernel["block"] for kernel in kernels})
    model = responses.build_response_model(generator, block_names)
    rng = np.random.default_rng(seed)
    collected = {}
    for modality, slices in slices_by_modality.items():
        samples = {kernel_key(kernel): _UniformSample(max_responses, rng) for kernel in kernels}
        for batch_responses in responses.iter_block_responses(model, slices, batch_size):
            for kernel in kernels:
                samples[kernel_key(kernel)].add(batch_responses[kernel["block"]][..., kernel["channel"]].ravel())
        collected[modality] = {key: sample.values() for key, sample in samples.items()}
    return collected


def compute_response_histograms(responses_by_modality, num_bins=40):
    """Per-kernel density histograms of each modality on shared bins, with their overlap.

    Args:
        responses_by_modality: dict modality -> {kernel key -> 1-D array} (see `collect_kernel_responses`).
        num_bins: int. Bins between the smallest and largest response of the kernel over all modalities.
            Defaults to `40`.

    Returns:
        list (one entry per kernel key, in first-seen order) of JSON-ready dicts:
        `{"kernel": key, "bin_edges": [...], "density": {modality: [...]}, "mean": {modality: float},
        "std": {modality: float}, "num_responses": {modality: int}, "overlap": float or None}`.
        `overlap` is Σ_bins min(p_a, p_b) of the binned frequencies, minimized over modality pairs; None with
        fewer than two modalities with responses. A modality without responses has an all-zero density
        and None mean/std. A constant kernel gets one bin of width 1 centred on the constant.
    """
    if not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"`num_bins` must be a positive int. Received: num_bins={num_bins}")
    modalities = list(responses_by_modality)
    keys = list(dict.fromkeys(key for values in responses_by_modality.values() for key in values))
    histograms = []
    for key in keys:
        values = {m: np.asarray(responses_by_modality[m].get(key, ()), dtype="float64").ravel() for m in modalities}
        edges = _shared_bin_edges(values.values(), num_bins)
        frequencies, entry = {}, {"kernel": key, "bin_edges": edges.tolist(), "density": {}, "mean": {}, "std": {}}
        entry["num_responses"] = {m: int(v.size) for m, v in values.items()}
        for modality, v in values.items():
            counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
            frequencies[modality] = counts / v.size if v.size else None
            widths = np.diff(edges)
            entry["density"][modality] = (counts / (v.size * widths) if v.size else np.zeros_like(widths)).tolist()
            entry["mean"][modality] = float(v.mean()) if v.size else None
            entry["std"][modality] = float(v.std()) if v.size else None
        present = [f for f in frequencies.values() if f is not None]
        overlaps = [float(np.minimum(a, b).sum()) for i, a in enumerate(present) for b in present[i + 1 :]]
        entry["overlap"] = min(overlaps) if overlaps else None
        histograms.append(entry)
    return histograms


def plot_response_histograms(histograms_by_model, path, title=None, log_density=False):
    """Draws Fig. 2: one row per model, one panel per kernel, modalities overlaid; writes a PNG atomically.

    Args:
        histograms_by_model: dict model label (e.g. "Pre-BN", "Post-BN") -> `compute_response_histograms`
            output. Rows may have different numbers of kernels.
        path: str or Path of the PNG to write (parent directories are created).
        title: str or None. Figure title.
        log_density: bool. Logarithmic density axis, for kernels whose spike at 0 (the responses PReLU
            squashes) dwarfs the rest. Defaults to `False`.

    Returns:
        The `Path` written. Needs matplotlib (`pip install -e ".[plots]"`).
    """
    from pathlib import Path

    from matplotlib.figure import Figure

    if not histograms_by_model or not any(histograms_by_model.values()):
        raise ValueError("There is nothing to plot. Received: no histograms")
    num_rows = len(histograms_by_model)
    num_cols = max(len(h) for h in histograms_by_model.values())
    figure = Figure(figsize=(2.6 * num_cols, 2.2 * num_rows + 0.4), layout="constrained")
    axes = figure.subplots(num_rows, num_cols, squeeze=False)
    for row, (label, histograms) in enumerate(histograms_by_model.items()):
        for col in range(num_cols):
            ax = axes[row][col]
            if col >= len(histograms):
                ax.set_axis_off()
                continue
            entry = histograms[col]
            for modality, density in entry["density"].items():
                ax.stairs(density, entry["bin_edges"], label=modality, fill=False, linewidth=1.2)
            overlap = "n/a" if entry["overlap"] is None else f"{entry['overlap']:.2f}"
            ax.set_title(f"{label} {entry['kernel']}\noverlap {overlap}", fontsize=8)
            ax.tick_params(labelsize=6)
            if log_density:
                ax.set_yscale("log")
            if col == 0:
                ax.set_ylabel("density", fontsize=7)
        axes[row][0].legend(fontsize=6)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path


def response_distribution_figure(
    generators_by_label,
    slices_by_modality,
    path,
    num_kernels=6,
    seed=0,
    num_bins=40,
    max_responses=100_000,
    batch_size=16,
):
    """Fig. 2 in one call: same kernel positions in every model, histograms per modality, PNG written.

    Args:
        generators_by_label: dict row label -> generator, e.g. `{"Pre-BN": pre, "Post-BN": post}`. The
            kernels are sampled from the first model's blocks; every model must have those blocks.
        slices_by_modality: mapping modality -> prepared slices (array or iterable of batches).
        path: PNG path.
        num_kernels, seed: see `sample_kernels`. num_bins: see `compute_response_histograms`.
        max_responses, batch_size: see `collect_kernel_responses`.

    Returns:
        dict with `"kernels"` (the sampled `{"block", "channel"}` list), `"histograms"` (label ->
        `compute_response_histograms` output) and `"path"` (str), JSON-ready.
    """
    first = next(iter(generators_by_label.values()))
    kernels = sample_kernels(block_channels_of(first), num_kernels=num_kernels, seed=seed)
    histograms = {}
    for label, generator in generators_by_label.items():
        collected = collect_kernel_responses(
            generator, slices_by_modality, kernels, max_responses=max_responses, seed=seed, batch_size=batch_size
        )
        histograms[label] = compute_response_histograms(collected, num_bins=num_bins)
    written = plot_response_histograms(histograms, path)
    return {"kernels": kernels, "histograms": histograms, "path": str(written)}


def _shared_bin_edges(arrays, num_bins):
    nonempty = [a for a in arrays if a.size]
    if not nonempty:
        return np.linspace(0.0, 1.0, num_bins + 1)
    low = min(float(a.min()) for a in nonempty)
    high = max(float(a.max()) for a in nonempty)
    if high <= low:
        return np.array([low - 0.5, low + 0.5])
    return np.linspace(low, high, num_bins + 1)


class _UniformSample:
    """Uniform sample without replacement of at most `size` values from a stream (bottom-k random keys)."""

    def __init__(self, size, rng):
        self.size = size
        self.rng = rng
        self._values = np.empty(0, dtype="float32")
        self._keys = np.empty(0)

    def add(self, values):
        self._values = np.concatenate([self._values, np.asarray(values, dtype="float32")])
        self._keys = np.concatenate([self._keys, self.rng.random(len(values))])
        if len(self._values) > self.size:
            keep = np.argpartition(self._keys, self.size)[: self.size]
            self._values, self._keys = self._values[keep], self._keys[keep]

    def values(self):
        return self._values.copy()
