"""One model of two cross-domain benchmarks on the same folds, paired scan by scan: what another budget or
config changes (e.g. the recipe's full 5000 steps against the benchmark's 1800).

    python scripts/compare_benchmarks.py REFERENCE_DIR OTHER_DIR [--variant method] [--out OUT.json]

Both directories are `cdseg experiment cross-domain` results of the same data and folds (`folds.json`: the
same test scans per fold); their steps, config and training seed may differ, and the differences are listed.
Only scans that both tested with the variant are compared, so a benchmark with some folds still to run
(`--fold`) is compared on the folds it has. Per modality and organ (and their mean): each benchmark's mean on
the shared scans, OTHER minus REFERENCE with a paired bootstrap interval and Wilcoxon p; per scan, both mean
Dice values. Prints a summary; OUT.json holds everything. Unlike `cdseg experiment seeds`, which pools repeats
of one setting, this pairs two settings.
"""

import argparse
import json
import sys
from pathlib import Path

from keras_cdseg.experiments.cross_domain_results import MEAN, METRICS, case_values
from keras_cdseg.experiments.resumable import resolved_run_config
from keras_cdseg.experiments.stats import bootstrap_mean, paired_bootstrap
from keras_cdseg.io_utils import write_json_atomic

FORMAT = "cdseg-benchmark-comparison/1"


def fail(message):
    """A one-line error and exit code 2, as the `cdseg` commands answer bad input."""
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(2)


def load(directory):
    path = Path(directory) / "results.json"
    try:
        record = json.loads(path.read_text())
        record["cases"], record["folds"], record["settings"]  # noqa: B018 (the fields this script reads)
    except (OSError, ValueError, KeyError, TypeError):
        fail(f"{path}: not the results.json of a cross-domain benchmark")
    return record


def test_scans(record):
    return {fold["fold"]: sorted(fold["test"]) for fold in record["folds"]}


def _flat(tree, prefix=""):
    """`{"a.b": value}` of nested dicts."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}.{key}" if prefix else key).items()}


def setting_differences(reference, other):
    """`{setting: [reference value, other value]}` over the benchmark settings and the resolved run config."""
    flat = [_flat({"settings": r["settings"], "run_config": resolved_run_config(r.get("run_config") or {})})
            for r in (reference, other)]  # fmt: skip
    return {key: [flat[0].get(key), flat[1].get(key)] for key in sorted(set(flat[0]) | set(flat[1]))
            if flat[0].get(key) != flat[1].get(key)}  # fmt: skip


def compare(reference, other, variant):
    if test_scans(reference) != test_scans(other):
        fail("the two benchmarks split the scans into other folds; their scans cannot be paired")
    organs = [o for o in reference["organs"] if o in other["organs"]] + [MEAN]
    values = [case_values(r["cases"], r["organs"]) for r in (reference, other)]
    resamples, seed = reference["settings"]["num_resamples"], reference["settings"]["seed"]
    entries = []
    for modality in reference["modalities"]:
        for organ in organs:
            for metric in METRICS:
                key = (variant, modality, organ, metric)
                ref, oth = values[0].get(key, {}), values[1].get(key, {})
                shared = sorted(set(ref) & set(oth))
                if not shared:
                    continue
                entries.append({
                    "modality": modality, "organ": organ, "metric": metric, "n_cases": len(shared),
                    "reference": bootstrap_mean([ref[c] for c in shared], resamples, seed=seed),
                    "other": bootstrap_mean([oth[c] for c in shared], resamples, seed=seed),
                    "other_minus_reference": paired_bootstrap({c: oth[c] for c in shared}, {c: ref[c] for c in shared},
                                                              resamples, seed=seed),
                })  # fmt: skip
    per_case = []
    for modality in reference["modalities"]:
        key = (variant, modality, MEAN, "dice")
        ref, oth = values[0].get(key, {}), values[1].get(key, {})
        per_case += [{"case_id": c, "modality": modality, "reference": ref[c], "other": oth[c]}
                     for c in sorted(set(ref) & set(oth))]  # fmt: skip
    return entries, per_case


def _number(value, signed=False):
    return "n/a" if value is None else f"{value:+.3f}" if signed else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="REFERENCE_DIR (e.g. the 1800-step benchmark)")
    parser.add_argument("other", type=Path, help="OTHER_DIR (e.g. the same folds at 5000 steps)")
    parser.add_argument("--variant", default="method", help="the model compared (default: method)")
    parser.add_argument("--out", type=Path, help="OUT.json")
    args = parser.parse_args()
    reference, other = load(args.reference), load(args.other)
    entries, per_case = compare(reference, other, args.variant)
    if not entries:
        fail(f"no scan was tested with {args.variant!r} in both benchmarks")
    record = {
        "format": FORMAT, "variant": args.variant,
        "reference": str(args.reference), "other": str(args.other),
        "setting_differences": setting_differences(reference, other),
        "comparisons": entries, "per_case_mean_dice": per_case,
    }  # fmt: skip
    for key, (a, b) in record["setting_differences"].items():
        print(f"setting {key}: {a} -> {b}")
    for e in (e for e in entries if e["metric"] == "dice"):
        d = e["other_minus_reference"]
        print(f"{e['modality']} {e['organ']:<13} n={e['n_cases']:<3} dice {_number(e['reference']['mean'])} -> "
              f"{_number(e['other']['mean'])}  diff {_number(d['mean'], True)} [{_number(d['low'], True)}, "
              f"{_number(d['high'], True)}] p {_number(d['wilcoxon_p'])}")  # fmt: skip
    if args.out:
        write_json_atomic(args.out, record)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
