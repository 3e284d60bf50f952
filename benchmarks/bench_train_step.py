"""Parameter counts and step times of the generator-only vs the adversarial training step.

    python benchmarks/bench_train_step.py                       # paper preset, 256×256, batch 6, T = 1
    python benchmarks/bench_train_step.py --preset unet --steps 10

Prints one JSON object: parameters, forward GFLOP per slice (TensorFlow's graph profiler), seconds per
step and achieved GFLOP/s for: generator-only (cross-entropy, the "w/o CAN" ablation), the adversarial
step of `CrossDomainModel`, and a naive adversarial step that runs a second generator forward pass for the
discriminator's fake input (what the single-forward design avoids). The design targets are
adversarial / generator-only ≤ 1.15.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cdseg import losses  # noqa: E402
from keras_cdseg.models.cross_domain_model import CrossDomainModel  # noqa: E402
from keras_cdseg.models.segmenter import build_discriminator, build_segmenter  # noqa: E402


class NaiveAdversarialModel(CrossDomainModel):
    """The textbook step: a separate `generator(x, training=False)` pass feeds the discriminator."""

    def _discriminator_update(self, x, y, y_fake, global_batch):
        return super()._discriminator_update(x, y, self.generator(x, training=False), global_batch)


def forward_gflop(model, input_shape):
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec((1,) + input_shape))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=fn.graph, options=options)
    return info.total_float_ops / 1e9


def time_steps(model, data, num_steps, num_warmup):
    model.make_train_function()
    step = model.train_function
    iterator = iter(data)
    for _ in range(num_warmup):
        logs = step(iterator)
    float(next(iter(logs.values())))
    start = time.perf_counter()
    for _ in range(num_steps):
        logs = step(iterator)
    float(next(iter(logs.values())))  # wait for the last step
    return (time.perf_counter() - start) / num_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--norm", default="batch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    shape = (args.image_size, args.image_size, 2 * args.context + 1)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size,) + shape, dtype="float32")
    y = np.eye(2, dtype="float32")[(x[..., args.context] > 0.5).astype(int)]
    data = tf.data.Dataset.from_tensors((x, y)).repeat()

    def build(cls, adversarial_weight):
        keras.utils.set_random_seed(0)
        generator = build_segmenter(shape, 2, preset=args.preset, norm=args.norm)
        model = cls(generator, build_discriminator(norm=args.norm), class_names=["background", "liver"])
        model.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), adversarial_weight=adversarial_weight)
        return model

    results = {
        "preset": args.preset,
        "input_shape": list(shape),
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    generator_only = build(CrossDomainModel, 0.0)
    results["generator_params"] = generator_only.generator.count_params()
    results["discriminator_params"] = generator_only.discriminator.count_params()
    results["generator_forward_gflop_per_slice"] = round(forward_gflop(generator_only.generator, shape), 3)
    # forward + backward ≈ 3 × forward for convolutions.
    step_gflop = 3 * results["generator_forward_gflop_per_slice"] * args.batch_size
    for name, cls, weight in [
        ("generator_only", CrossDomainModel, 0.0),
        ("adversarial", CrossDomainModel, 1e-3),
        ("adversarial_naive_second_forward", NaiveAdversarialModel, 1e-3),
    ]:
        seconds = time_steps(build(cls, weight), data, args.steps, args.warmup)
        results[f"{name}_s_per_step"] = round(seconds, 4)
        results[f"{name}_slices_per_s"] = round(args.batch_size / seconds, 2)
        results[f"{name}_generator_gflop_per_s"] = round(step_gflop / seconds, 1)
    results["adversarial_over_generator_only"] = round(
        results["adversarial_s_per_step"] / results["generator_only_s_per_step"], 3
    )
    results["naive_over_generator_only"] = round(
        results["adversarial_naive_second_forward_s_per_step"] / results["generator_only_s_per_step"], 3
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
