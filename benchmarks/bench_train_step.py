"""Step time of one training configuration, or the generator-only vs adversarial comparison.

    python benchmarks/bench_train_step.py                  # paper preset, 256×256, batch 6, T = 1: the three steps below
    python benchmarks/bench_train_step.py --only adversarial --jit-compile --cpu-replicas 2 --precision mixed_bfloat16

Prints JSON: parameters, forward GFLOP per slice (TensorFlow's graph profiler), and for each step kind the
seconds per step, slices/s, the generator's achieved GFLOP/s (forward + backward ≈ 3 × forward) and the
process's peak resident memory. Step kinds: `generator_only` (cross-entropy, the "w/o CAN" ablation),
`adversarial` (`CrossDomainModel`: one generator forward feeds both losses) and `naive` (a second
`generator(x, training=False)` pass makes the discriminator's fake input — what the design avoids).
Design target: adversarial / generator_only ≤ 1.15.
"""

import argparse
import json
import os
import platform
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cdseg.distribute import make_strategy, needs_synchronized_batch_norm  # noqa: E402
from keras_cdseg.models.cross_domain_model import CrossDomainModel  # noqa: E402
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter  # noqa: E402

KINDS = ("generator_only", "adversarial", "naive")


class NaiveAdversarialModel(CrossDomainModel):
    """The textbook step: a separate `generator(x, training=False)` pass feeds the discriminator."""

    def _discriminator_update(self, x, y, y_fake, global_batch):
        return super()._discriminator_update(x, y, self.generator(x, training=False), global_batch)


def forward_gflop(model, input_shape):
    import tensorflow as tf  # here, not at the top: bench_backends imports this module's helpers on JAX

    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((1,) + input_shape))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph=fn.graph, options=options).total_float_ops / 1e9


def step_timer(model, data, num_warmup):
    """Compiles and warms up `model`'s train function; returns `run(num_steps) -> seconds per step`."""
    model.make_train_function()
    step = model.train_function
    iterator = iter(model.distribute_strategy.experimental_distribute_dataset(data))

    def run(num_steps):
        start = time.perf_counter()
        for _ in range(num_steps):
            logs = step(iterator)
        float(next(iter(logs.values())))  # wait for the last step
        return (time.perf_counter() - start) / num_steps

    run(num_warmup)
    return run


def interleaved_seconds(timers, num_steps, num_rounds):
    """Median seconds per step of each timer, measured in alternating rounds (A B C A B C ...) so that load
    drifting on a shared machine affects every kind alike instead of biasing the ratios."""
    samples = {name: [] for name in timers}
    for _ in range(num_rounds):
        for name, run in timers.items():
            samples[name].append(run(num_steps))
    return {name: float(np.median(values)) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--base-filters", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6, help="per replica")
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the median is reported")
    parser.add_argument("--only", choices=KINDS, help="time one step kind (default: all three)")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--cpu-replicas", type=int, default=0)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    args = parser.parse_args()
    import tensorflow as tf

    strategy = make_strategy("default", args.cpu_replicas)
    keras.mixed_precision.set_global_policy(args.precision)
    replicas = strategy.num_replicas_in_sync
    global_batch = args.batch_size * replicas
    shape = (args.image_size, args.image_size, 2 * args.context + 1)
    rng = np.random.default_rng(0)
    x = rng.random((global_batch,) + shape, dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., args.context] > 0.5).astype(int)]
    data = tf.data.Dataset.from_tensors((x, y)).repeat()

    def build(cls, adversarial_weight):
        keras.utils.set_random_seed(0)
        sync = needs_synchronized_batch_norm(strategy)
        with strategy.scope():
            generator = build_segmenter(shape, 2, preset=args.preset, base_filters=args.base_filters, norm=args.norm,
                                        synchronized=sync)  # fmt: skip
            model = cls(generator, build_discriminator(norm=args.norm, synchronized=sync), class_names=["bg", "liver"])
            model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=adversarial_weight,
                          jit_compile=args.jit_compile)  # fmt: skip
        return model

    reference = build(CrossDomainModel, 0.0)
    results = {
        "preset": args.preset,
        "input_shape": list(shape),
        "batch_size_per_replica": args.batch_size,
        "replicas": replicas,
        "jit_compile": args.jit_compile,
        "precision": args.precision,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "generator_params": reference.generator.count_params(),
        "discriminator_params": reference.discriminator.count_params(),
        "generator_forward_gflop_per_slice": round(forward_gflop(reference.generator, shape), 3),
    }
    step_gflop = 3 * results["generator_forward_gflop_per_slice"] * global_batch
    plan = {"generator_only": (CrossDomainModel, 0.0), "adversarial": (CrossDomainModel, 1e-3),
            "naive": (NaiveAdversarialModel, 1e-3)}  # fmt: skip
    kinds = [args.only] if args.only else list(KINDS)
    timers = {}
    for kind in kinds:
        cls, weight = plan[kind]
        timers[kind] = step_timer(reference if kind == "generator_only" else build(cls, weight), data, args.warmup)
    load_before = os.getloadavg()[0]
    seconds = interleaved_seconds(timers, args.steps, args.rounds)
    for kind in kinds:
        results[f"{kind}_s_per_step"] = round(seconds[kind], 4)
        results[f"{kind}_slices_per_s"] = round(global_batch / seconds[kind], 2)
        results[f"{kind}_generator_gflop_per_s"] = round(step_gflop / seconds[kind], 1)
    # Other processes on the machine slow every number; the 1-minute load average says how busy it was.
    results["load_average_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if not args.only:
        base = results["generator_only_s_per_step"]
        results["adversarial_over_generator_only"] = round(results["adversarial_s_per_step"] / base, 3)
        results["naive_over_generator_only"] = round(results["naive_s_per_step"] / base, 3)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
