"""Training throughput matrix: step kind × XLA × CPU replicas × precision, one process per configuration.

    python benchmarks/bench_train.py --image-size 128 --preset unet      # what docs/training.md reports
    python benchmarks/bench_train.py                                      # paper preset, 256×256, batch 6

Each configuration runs `bench_train_step.py --only ...` in a fresh process (so peak memory is its own) and
the script prints one JSON object with every row plus a small text table on stderr.
"""

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

STEP_SCRIPT = Path(__file__).with_name("bench_train_step.py")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=6, help="global batch; split over replicas")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--kinds", default="generator_only,adversarial")
    parser.add_argument("--jit", default="off,on")
    args = parser.parse_args()

    rows = []
    for kind, jit, replicas, precision in itertools.product(
        args.kinds.split(","), args.jit.split(","), [int(r) for r in args.replicas.split(",")], args.precisions.split(",")
    ):
        command = [
            sys.executable, str(STEP_SCRIPT), "--only", kind, "--preset", args.preset, "--image-size",
            str(args.image_size), "--batch-size", str(args.batch_size // replicas), "--steps", str(args.steps),
            "--cpu-replicas", str(replicas if replicas > 1 else 0), "--precision", precision,
        ] + (["--jit-compile"] if jit == "on" else [])  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"kind": kind, "jit": jit, "replicas": replicas, "precision": precision,
                         "error": done.stderr.strip().splitlines()[-1][:300]})  # fmt: skip
        else:
            result = json.loads(done.stdout[done.stdout.index("{"):])
            rows.append({
                "kind": kind, "jit": jit, "replicas": replicas, "precision": precision,
                "s_per_step": result[f"{kind}_s_per_step"], "slices_per_s": result[f"{kind}_slices_per_s"],
                "generator_gflop_per_s": result[f"{kind}_generator_gflop_per_s"], "peak_rss_mb": result["peak_rss_mb"],
                "generator_params": result["generator_params"],
            })  # fmt: skip
        row = rows[-1]
        print(f"{kind:15s} jit={jit:3s} replicas={replicas} {precision:15s} "
              + (f"{row['s_per_step']:.3f} s/step {row['slices_per_s']:7.2f} slices/s {row['peak_rss_mb']:7.0f} MB"
                 if "error" not in row else "ERROR " + row["error"]), file=sys.stderr, flush=True)  # fmt: skip
    print(json.dumps({"preset": args.preset, "image_size": args.image_size, "global_batch": args.batch_size, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
