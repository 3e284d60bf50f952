"""Training and inference speed of the paper preset on every installed Keras backend, against plain PyTorch.

    python benchmarks/bench_backends.py --steps 3 --rounds 2                # 256×256, T = 1, batch 6
    python benchmarks/bench_backends.py --find-max-batch                    # also the largest batch that fits
    python benchmarks/bench_backends.py --backends jax,torch_peer --precisions float32

Each backend runs in its own subprocess (`KERAS_BACKEND` is fixed per process): `tensorflow` (with and
without XLA `jit_compile`), `jax` (always XLA), `torch` (Keras on PyTorch, eager) and `torch_peer` — the same
two networks (generator + conditional discriminator, same layer shapes) written in plain PyTorch, with the
same one-generator-forward adversarial step. A backend that is not installed is skipped and says so. The
`jax`, `torch` and `torch_peer` subprocesses need no TensorFlow (Keras may still load it opportunistically
where it is installed), so the script runs unchanged on a GPU machine with JAX and PyTorch only.

Per backend, precision (float32, mixed_bfloat16) and XLA setting it prints: seconds per step of the
generator-only and the adversarial step, their ratio, slices/s, the generator's achieved FLOP/s
(forward + backward ≈ 3 × forward, counted from the layer shapes) and its share of a matmul peak measured
in the same subprocess on the same device and precision, the generator forward (inference) at the same
batch, and peak memory (device memory on a GPU, resident memory on a CPU). Step times are medians of
interleaved rounds (`bench_train_step.interleaved_seconds`).
"""

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
KERAS_BACKENDS = ("tensorflow", "jax", "torch")
ALL_BACKENDS = KERAS_BACKENDS + ("torch_peer",)
PRECISIONS = ("float32", "mixed_bfloat16")
NUM_CLASSES = 2


def _installed(backend):
    return importlib.util.find_spec("torch" if backend == "torch_peer" else backend) is not None


# ---- FLOP counting (backend-neutral: from the layer shapes)


def generator_gflop(generator):
    """Forward GFLOP per slice of a functional generator's Conv2D and Dense layers (2 × multiply-adds).

    A Conv2D inside a top-level layer (e.g. `PreNormConvBlock`: norm, conv, PReLU) has that layer's output
    height and width. Normalization, activations, resizing and additions are left out (< 2 % of the paper
    preset); the TensorFlow subprocess also reports TensorFlow's graph profiler count to check this one.
    """
    import keras

    total = 0
    for layer in generator.layers:
        out_h, out_w = layer.output.shape[1:3] if len(layer.output.shape) == 4 else (1, 1)
        for leaf in _leaf_layers(layer):
            if isinstance(leaf, keras.layers.Conv2D):
                kh, kw = leaf.kernel_size
                total += 2 * kh * kw * leaf.kernel.shape[2] * leaf.kernel.shape[3] * out_h * out_w
            elif isinstance(leaf, keras.layers.Dense):
                total += 2 * leaf.kernel.shape[0] * leaf.kernel.shape[1]
    return total / 1e9


def _leaf_layers(layer):
    children = getattr(layer, "_layers", [])
    if not children:
        return [layer]
    return [leaf for child in children for leaf in _leaf_layers(child)]


# ---- timing helpers shared by every subprocess


def interleaved(timers, num_steps, num_rounds):
    """`bench_train_step.interleaved_seconds` (imported lazily: that module is TensorFlow-free at import)."""
    sys.path.insert(0, str(BENCHMARKS))
    from bench_train_step import interleaved_seconds

    return interleaved_seconds(timers, num_steps, num_rounds)


def _timer(step, sync, num_warmup):
    def run(num_steps):
        start = time.perf_counter()
        out = None
        for _ in range(num_steps):
            out = step()
        sync(out)
        return (time.perf_counter() - start) / num_steps

    run(num_warmup)
    return run


def _batch(batch_size, shape, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((batch_size,) + shape, dtype="float32")
    y = np.eye(NUM_CLASSES, dtype="float32")[(x[..., shape[-1] // 2] > 0.5).astype(int)]
    return x, y


# ---- Keras backends


def keras_child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from keras_cdseg.models.cross_domain_model import CrossDomainModel
    from keras_cdseg.models.segmenter import build_discriminator, build_segmenter

    backend = keras.backend.backend()
    keras.mixed_precision.set_global_policy(args.precision)
    shape = (args.image_size, args.image_size, 2 * args.context + 1)
    jit = args.jit_compile if backend == "tensorflow" else backend == "jax"

    def build(adversarial_weight):
        keras.utils.set_random_seed(0)
        generator = build_segmenter(shape, NUM_CLASSES, preset="paper", norm="batch")
        model = CrossDomainModel(generator, build_discriminator(norm="batch"), class_names=["bg", "liver"])
        model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=adversarial_weight,
                      jit_compile=jit)  # fmt: skip
        return model

    probe = build(0.0)
    result = {
        "backend": backend,
        "version": __import__(backend).__version__,
        "keras": keras.__version__,
        "precision": args.precision,
        "xla": bool(jit),
        "device": _device_name(backend),
        "generator_params": probe.generator.count_params(),
        "discriminator_params": probe.discriminator.count_params(),
        "generator_forward_gflop_per_slice": round(generator_gflop(probe.generator), 3),
    }
    if backend == "tensorflow":
        sys.path.insert(0, str(BENCHMARKS))
        from bench_train_step import forward_gflop

        result["tf_profiler_forward_gflop_per_slice"] = round(forward_gflop(probe.generator, shape), 3)
    del probe
    result["matmul_peak_gflop_per_s"] = round(matmul_peak(backend, args.precision) / 1e9, 1)

    batch_sizes = [args.batch_size]
    if args.find_max_batch:
        batch_sizes.append(largest_batch(lambda b: _keras_timers(build, backend, b, shape, 1), args.batch_size))
    result["runs"] = []
    for batch_size in batch_sizes:
        timers = _keras_timers(build, backend, batch_size, shape, args.warmup)
        seconds = interleaved(timers, args.steps, args.rounds)
        result["runs"].append(_summarize(seconds, batch_size, result))
    result["peak_memory_mb"] = peak_memory_mb(backend)
    return result


def _keras_timers(build, backend, batch_size, shape, num_warmup):
    import keras
    import numpy as np

    x, y = _batch(batch_size, shape)
    timers = {}
    for kind, weight in (("generator_only", 0.0), ("adversarial", 1e-3)):
        model = build(weight)
        timers[kind] = _keras_step_timer(model, backend, x, y, num_warmup)
    from keras_cdseg.inference.volume import keras_predictor

    # A model of its own: JAX's train function donates (deletes) the arrays the trained models' variables held.
    forward = keras_predictor(build(0.0).generator)
    timers["inference"] = _timer(lambda: forward(x), lambda out: np.asarray(out), num_warmup)
    del keras
    return timers


def _keras_step_timer(model, backend, x, y, num_warmup):
    """Compiled train function of `model` called on one on-device batch, as `fit` would call it."""
    model.make_train_function()
    if backend == "tensorflow":
        import tensorflow as tf

        iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
        return _timer(lambda: model.train_function(iterator), lambda logs: float(next(iter(logs.values()))), num_warmup)
    if backend == "jax":
        import jax

        data = (jax.device_put(x), jax.device_put(y))
        state = {"value": model._get_jax_state(True, True, True, True)}

        def step():
            logs, state["value"] = model.train_function(state["value"], iter([data]))
            return logs

        return _timer(step, lambda logs: float(next(iter(logs.values()))), num_warmup)
    import torch

    device = _torch_device()
    data = [(torch.as_tensor(x, device=device), torch.as_tensor(y, device=device))]
    return _timer(lambda: model.train_function(data), lambda logs: float(next(iter(logs.values()))), num_warmup)


# ---- plain PyTorch peer


def peer_child(args):
    import numpy as np
    import torch

    device = _torch_device()
    shape = (args.image_size, args.image_size, 2 * args.context + 1)
    dtype = torch.bfloat16 if args.precision == "mixed_bfloat16" else None
    result = {
        "backend": "torch_peer",
        "version": torch.__version__,
        "precision": args.precision,
        "xla": False,
        "device": _device_name("torch"),
    }
    torch.manual_seed(0)
    probe = PeerGenerator(shape[-1]).to(device)
    result["generator_params"] = sum(p.numel() for p in probe.parameters())
    result["discriminator_params"] = sum(p.numel() for p in PeerDiscriminator(shape[-1] + NUM_CLASSES, shape[0]).parameters())
    result["generator_forward_gflop_per_slice"] = round(peer_forward_gflop(probe, shape, device) / 1e9, 3)
    result["matmul_peak_gflop_per_s"] = round(matmul_peak("torch", args.precision) / 1e9, 1)
    batch_sizes = [args.batch_size]
    if args.find_max_batch:
        batch_sizes.append(largest_batch(lambda b: _peer_timers(b, shape, device, dtype, 1), args.batch_size))
    result["runs"] = []
    for batch_size in batch_sizes:
        seconds = interleaved(_peer_timers(batch_size, shape, device, dtype, args.warmup), args.steps, args.rounds)
        result["runs"].append(_summarize(seconds, batch_size, result))
    result["peak_memory_mb"] = peak_memory_mb("torch")
    del np
    return result


def _peer_classes():
    import torch
    from torch import nn
    from torch.nn import functional as F

    from keras_cdseg.models.segmenter import PRESETS, level_filters

    settings = PRESETS["paper"]
    filters = level_filters(settings["base_filters"], settings["depth"], settings["max_filter_multiplier"])
    kernel = settings["kernel_size"]

    class Block(nn.Module):
        """norm -> conv -> PReLU (pre-norm) or conv -> norm -> PReLU (post-norm), like PreNormConvBlock."""

        def __init__(self, c_in, c_out, k, stride=1, norm="batch", norm_first=True):
            super().__init__()
            channels = c_in if norm_first else c_out
            self.norm_first = norm_first
            self.norm = nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01) if norm == "batch" else nn.GroupNorm(
                channels, channels, eps=1e-3)  # fmt: skip
            self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=norm_first)
            self.act = nn.PReLU(c_out)

        def forward(self, x):
            if self.norm_first:
                return self.act(self.conv(self.norm(x)))
            return self.act(self.norm(self.conv(x)))

    class Generator(nn.Module):
        """The paper preset: 11×11 instance-norm stem, five 5×5 stride-2 pre-BN blocks, bilinear up-sampling
        with a 5×5 block and an additive skip per level, 1×1 logits, softmax."""

        def __init__(self, channels):
            super().__init__()
            self.stem = Block(channels, filters[0], 11, norm="instance")
            self.down = nn.ModuleList(Block(filters[i - 1], filters[i], kernel, 2) for i in range(1, len(filters)))
            self.up = nn.ModuleList(Block(filters[i + 1], filters[i], kernel) for i in range(len(filters) - 1))
            self.logits = nn.Conv2d(filters[0], NUM_CLASSES, 1)

        def forward(self, x):
            skips = [self.stem(x)]
            for block in self.down:
                skips.append(block(skips[-1]))
            x = skips[-1]
            for level in reversed(range(len(filters) - 1)):
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                x = self.up[level](x) + skips[level]
            return torch.softmax(self.logits(x).float(), dim=1)

    class Discriminator(nn.Module):
        """Five 5×5 stride-2 conv -> BN -> PReLU blocks of 32 channels, dense 256 -> PReLU, dense 1."""

        def __init__(self, channels, size=256, width=32, num_blocks=5, dense_units=256):
            super().__init__()
            blocks = [Block(channels if i == 0 else width, width, 5, 2, norm_first=False) for i in range(num_blocks)]
            self.blocks = nn.Sequential(*blocks)
            self.hidden = nn.Linear(width * (size // 2**num_blocks) ** 2, dense_units)
            self.act = nn.PReLU(dense_units)
            self.logit = nn.Linear(dense_units, 1)

        def forward(self, x, y):
            h = self.blocks(torch.cat([x, y.to(x.dtype)], dim=1))
            return self.logit(self.act(self.hidden(torch.flatten(h, 1))).float())

    return Generator, Discriminator


def PeerGenerator(channels):
    return _peer_classes()[0](channels)


def PeerDiscriminator(channels, size):
    return _peer_classes()[1](channels, size=size)


def peer_forward_gflop(model, shape, device):
    """2 × multiply-adds of the Conv2d and Linear layers, from forward hooks (same rule as the Keras count)."""
    import torch

    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += 2 * kh * kw * module.in_channels * module.out_channels * output.shape[2] * output.shape[3]
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros((1, shape[2], shape[0], shape[1]), device=device))
    for handle in handles:
        handle.remove()
    return total[0]


def _peer_timers(batch_size, shape, device, dtype, num_warmup):
    import torch
    from torch.nn import functional as F

    Generator, Discriminator = _peer_classes()
    x_np, y_np = _batch(batch_size, shape)
    x = torch.as_tensor(x_np, device=device).permute(0, 3, 1, 2).contiguous()
    y = torch.as_tensor(y_np, device=device).permute(0, 3, 1, 2).contiguous()

    def autocast():
        kind = "cuda" if device.type == "cuda" else "cpu"
        return torch.autocast(kind, dtype=dtype, enabled=dtype is not None)

    def make(adversarial):
        torch.manual_seed(0)
        g = Generator(shape[-1]).to(device).train()
        d = Discriminator(shape[-1] + NUM_CLASSES, size=shape[0]).to(device).train()
        g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)

        def step():
            with autocast():
                y_pred = g(x)
                seg = -(y * torch.log(y_pred.clamp(1e-7, 1 - 1e-7))).sum(1).mean()
                loss = seg
                if adversarial:
                    real, fake = d(x, y), d(x, y_pred.detach())
                    d_loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
                        F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))  # fmt: skip
            if adversarial:
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                with autocast():
                    adv = d(x, y_pred)
                    loss = seg + 1e-3 * F.binary_cross_entropy_with_logits(adv, torch.ones_like(adv))
            g_opt.zero_grad(set_to_none=True)
            loss.backward()
            g_opt.step()
            return loss

        return step, g

    def sync(out):
        if device.type == "cuda":
            torch.cuda.synchronize()
        return float(out)

    g_step, g = make(False)
    a_step, _ = make(True)
    timers = {"generator_only": _timer(g_step, sync, num_warmup), "adversarial": _timer(a_step, sync, num_warmup)}

    def infer():
        g.eval()
        with torch.no_grad(), autocast():
            return g(x)

    timers["inference"] = _timer(infer, lambda out: sync(out.float().sum()), num_warmup)
    return timers


# ---- device facts


def _torch_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_name(backend):
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        return f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else f"cpu: {platform.processor()}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu: {gpus[0].name}" if gpus else f"cpu: {platform.processor()}"


def matmul_peak(backend, precision, size=None, repeats=5):
    """Best FLOP/s of an N×N matmul on `backend`'s device (bfloat16 operands for the mixed policy)."""
    import numpy as np

    bf16 = precision == "mixed_bfloat16"
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        gpu = jax.devices()[0].platform != "cpu"
        size = size or (8192 if gpu else 2048)
        a = jnp.asarray(np.random.default_rng(0).random((size, size), dtype="float32"), jnp.bfloat16 if bf16 else jnp.float32)
        f = jax.jit(lambda m: m @ m)
        run, sync = (lambda: f(a)), (lambda out: out.block_until_ready())
    elif backend == "torch":
        import torch

        device = _torch_device()
        size = size or (8192 if device.type == "cuda" else 2048)
        a = torch.rand((size, size), device=device, dtype=torch.bfloat16 if bf16 else torch.float32)
        run = lambda: a @ a  # noqa: E731

        def sync(out):
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out
    else:
        import tensorflow as tf

        size = size or (8192 if tf.config.list_physical_devices("GPU") else 2048)
        a = tf.constant(np.random.default_rng(0).random((size, size), dtype="float32"), tf.bfloat16 if bf16 else tf.float32)
        f = tf.function(lambda m: tf.matmul(m, m), jit_compile=False)
        run, sync = (lambda: f(a)), (lambda out: out.numpy())
    sync(run())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sync(run())
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_memory_mb(backend):
    """Peak device memory on a GPU; the process's peak resident memory on a CPU."""
    try:
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return {"device": round(stats["peak_bytes_in_use"] / 2**20, 1)}
        elif backend in ("torch", "torch_peer"):
            import torch

            if torch.cuda.is_available():
                return {"device": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
        else:
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return {"device": round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)}
    except (RuntimeError, ValueError):
        pass
    return {"host_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def largest_batch(try_batch, start, limit=1024):
    """Doubles the batch from `start` until a step fails for lack of memory (or `limit`); the last that ran."""
    good, batch = start, start * 2
    while batch <= limit:
        try:
            try_batch(batch)
        except Exception as e:  # every framework names its out-of-memory error differently
            text = f"{type(e).__name__}: {e}".lower()
            if any(word in text for word in ("out of memory", "resource_exhausted", "resource exhausted", "oom")):
                break
            raise
        good, batch = batch, batch * 2
    return good


def _summarize(seconds, batch_size, result):
    train_gflop = 3 * result["generator_forward_gflop_per_slice"] * batch_size
    infer_gflop = result["generator_forward_gflop_per_slice"] * batch_size
    peak = result["matmul_peak_gflop_per_s"]
    run = {"batch_size": batch_size}
    for kind in ("generator_only", "adversarial"):
        run[f"{kind}_s_per_step"] = round(seconds[kind], 4)
        run[f"{kind}_slices_per_s"] = round(batch_size / seconds[kind], 2)
        run[f"{kind}_gflop_per_s"] = round(train_gflop / seconds[kind], 1)
        run[f"{kind}_share_of_peak"] = round(train_gflop / seconds[kind] / peak, 3)
    run["adversarial_over_generator_only"] = round(seconds["adversarial"] / seconds["generator_only"], 3)
    run["inference_s_per_batch"] = round(seconds["inference"], 4)
    run["inference_slices_per_s"] = round(batch_size / seconds["inference"], 2)
    run["inference_gflop_per_s"] = round(infer_gflop / seconds["inference"], 1)
    run["inference_share_of_peak"] = round(infer_gflop / seconds["inference"] / peak, 3)
    return run


# ---- parent


def run_child(backend, precision, jit_compile, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["KERAS_BACKEND"] = "torch" if backend == "torch_peer" else backend
    command = [sys.executable, __file__, "--child", backend, "--precision", precision, *_shared_flags(args)]
    if jit_compile:
        command.append("--jit-compile")
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"backend": backend, "precision": precision, "xla": jit_compile, "error": " | ".join(tail)[-600:]}
    return json.loads(lines[-1])


def _tf_has_gpu():
    command = [sys.executable, "-c", "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(command, capture_output=True, text=True, env=env).stdout.strip().splitlines()
    return bool(out) and out[-1] != "0"


def _shared_flags(args):
    flags = ["--image-size", str(args.image_size), "--context", str(args.context), "--batch-size", str(args.batch_size),
             "--steps", str(args.steps), "--warmup", str(args.warmup), "--rounds", str(args.rounds)]  # fmt: skip
    return flags + (["--find-max-batch"] if args.find_max_batch else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(ALL_BACKENDS), help="comma-separated subset of " + ", ".join(ALL_BACKENDS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--find-max-batch", action="store_true", help="also time the largest batch that fits")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-tf-xla", action="store_true", help="TensorFlow without jit_compile only")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    parser.add_argument("--child", choices=ALL_BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--jit-compile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        sys.path.insert(0, str(BENCHMARKS.parent))
        result = peer_child(args) if args.child == "torch_peer" else keras_child(args)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()
    results = {
        "preset": "paper",
        "input_shape": [args.image_size, args.image_size, 2 * args.context + 1],
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "runs": [],
        "skipped": {},
    }
    for backend in args.backends.split(","):
        if backend not in ALL_BACKENDS:
            parser.error(f"unknown backend {backend!r}")
        if not _installed(backend):
            results["skipped"][backend] = "not installed"
            continue
        for precision in args.precisions.split(","):
            for jit_compile in ([False] if backend != "tensorflow" or args.no_tf_xla else [False, True]):
                if jit_compile and precision == "mixed_bfloat16" and not _tf_has_gpu():
                    results["skipped"]["tensorflow xla mixed_bfloat16"] = "TensorFlow's XLA CPU compiler rejects the bfloat16 step"
                    continue
                results["runs"].append(run_child(backend, precision, jit_compile, args))
                print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
    results["load_average_before"] = [round(v, 2) for v in load_before]
    results["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    results["fastest"] = _fastest(results["runs"])
    print(json.dumps(results, indent=2))


def _fastest(runs):
    """Per precision: the fastest backend (setting) for the adversarial step and for inference at batch 6."""
    fastest = {}
    for kind, key in (("training", "adversarial_s_per_step"), ("inference", "inference_s_per_batch")):
        for run in runs:
            if "error" in run or run["backend"] == "torch_peer":
                continue
            name = run["backend"] + (" + XLA" if run["xla"] and run["backend"] == "tensorflow" else "")
            seconds = run["runs"][0][key]
            slot = fastest.setdefault(f"{kind}_{run['precision']}", {"backend": name, "seconds": seconds})
            if seconds < slot["seconds"]:
                slot.update(backend=name, seconds=seconds)
    return fastest


if __name__ == "__main__":
    main()
