"""Seconds per 512×512×100 CT: the `segment_volume` signature through the gRPC client vs `cdseg predict`.

    python benchmarks/bench_serving.py                     # paper preset at 256×256, T = 1, 100 slices
    python benchmarks/bench_serving.py --num-slices 40 --preset unet
    python benchmarks/bench_serving.py --model keras_cdseg/pretrained/model --real-ct --out OUT.json

The synthetic CT of `bench_predict.py` (int16, stored LPS, 0.75 mm pixels, 2.5 mm slices) is segmented by an
untrained generator (timing does not depend on the weights), exported once with `export_model`. With
`--model RUN_DIR` a trained run is exported instead (e.g. the bundled model's directory, five classes: the
graph's dense restoration grows with the classes), and with `--real-ct` the scan is the real full-range HU CT
of ../shared/data/real resampled to `--size`×`--size`×`--num-slices` (`bench_predict_bundled.py`), so the
label agreement is measured on organs, not on an untrained network's noise:

- `cdseg_predict`: `predict_cases` (the library call behind `cdseg predict --no-postprocess`) with the
  exported SavedModel's `serving_default`: NIfTI load, numpy preparation, network, restoration, write;
- `segment_volume_grpc`: NIfTI load (int16 as stored), then
  `serving_client.segment_volume_via_serving(transport="grpc", postprocess=False)`, answered in-process by
  the reloaded SavedModel's `segment_volume_int16` signature from the serialized `PredictRequest` bytes
  (reorient, build and serialize the protobuf, parse it, run the graph with preprocessing + network +
  restoration, build and parse the reply). No server and no network: TF
  Serving's own overhead on top is not included, and no output file is written (cdseg predict writes one).

Both run `--repeats` times, interleaved; the best is reported with the load average before and after (the
CPU is shared with other jobs). Also reported: the label agreement of the two, the request size, and the
preparation alone (graph `volume_signature.prepare_canonical` as a tf.function vs numpy `prepare_volume`,
with whether their slices are bit-identical).
"""

import argparse
import importlib.util
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def time_preparation(image, affine, data_config, repeats):
    """Best seconds of the graph and the numpy preparation of the same float32 volume, and their equality."""
    import tensorflow as tf

    from keras_cdseg.data.nifti_io import Volume
    from keras_cdseg.data.preprocessing import _MAX_PERCENTILE_SAMPLES, prepare_volume
    from keras_cdseg.deploy.serving_client import to_canonical
    from keras_cdseg.deploy.volume_signature import prepare_canonical

    volume = Volume(data=np.asfortranarray(image.astype(np.float32)), affine=affine)  # as load_image gives it
    data, spacing_mm, _ = to_canonical(volume)
    graph = tf.function(lambda v, s: prepare_canonical(v, s, data_config, _MAX_PERCENTILE_SAMPLES))
    inputs = (tf.constant(data, tf.float32), tf.constant(spacing_mm))
    graph(*inputs)  # trace
    best = {"graph": float("inf"), "numpy": float("inf")}
    for _ in range(repeats):
        start = time.perf_counter()
        from_graph = graph(*inputs).numpy()
        best["graph"] = min(best["graph"], time.perf_counter() - start)
        start = time.perf_counter()
        from_numpy = prepare_volume(volume, data_config).image
        best["numpy"] = min(best["numpy"], time.perf_counter() - start)
    return {"seconds_best": {k: round(v, 2) for k, v in best.items()},
            "bit_identical": bool(np.array_equal(from_graph, from_numpy))}  # fmt: skip


def _load_sibling(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", choices=["paper", "unet"])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--context", type=int, default=1)
    parser.add_argument("--target-spacing-mm", type=float, default=1.5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--num-slices", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None,
                        help="a trained run directory to export (default: an untrained --preset generator)")
    parser.add_argument("--real-ct", action="store_true",
                        help="the real CT of ../shared/data/real resampled, instead of the synthetic CT")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()

    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    import nibabel as nib

    from keras_cdseg.data.nifti_io import Volume, save_array
    from keras_cdseg.deploy.export import export_model
    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.deploy.serving_client import segment_volume_via_serving
    from keras_cdseg.inference.predictors import load_predictor

    bench = _load_sibling("bench_predict")
    result = {"machine": {"python": platform.python_version(), "tensorflow": tf.__version__,
                          "cpu_count": os.cpu_count(), "load_average_before": list(os.getloadavg())},
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model is None:
            bench.make_run_dir(tmp / "run", args)
            source = tmp / "run"
        else:  # a copy: exporting may write the run's quality calibration into it
            source = Path(shutil.copytree(args.model, tmp / "run"))
        start = time.perf_counter()
        version_dir = export_model(source, root=tmp / "saved_models").version_dir
        result["export_seconds"] = round(time.perf_counter() - start, 2)
        scan = tmp / "ct.nii.gz"
        if args.real_ct:
            _load_sibling("bench_predict_bundled").write_resampled_ct(scan, args.size, args.num_slices)
            stored = nib.load(str(scan))
            image, affine = np.asarray(stored.dataobj), stored.affine
        else:
            image, affine = bench.synthetic_ct((args.size, args.size, args.num_slices), (0.75, 0.75, 2.5))
            save_array(image, affine, scan, dtype=np.int16)
        predictor = load_predictor(version_dir)
        signatures = tf.saved_model.load(str(version_dir)).signatures
        request_bytes = []

        def serve(request):
            wire = request.SerializeToString()
            request_bytes.append(len(wire))
            request = predict_pb2.PredictRequest.FromString(wire)
            inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
            outputs = signatures[request.model_spec.signature_name](**inputs)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return predict_pb2.PredictResponse.FromString(response.SerializeToString())

        times = {"cdseg_predict": [], "segment_volume_grpc": []}
        labels = {}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            stats = predict_cases([scan], tmp / f"out{repeat}", predictor, postprocess=False)
            times["cdseg_predict"].append(time.perf_counter() - start)
            stage_seconds = stats[0]["seconds"]
            labels["cdseg_predict"] = np.asarray(nib.load(str(tmp / f"out{repeat}" / "ct.nii.gz")).dataobj)
            start = time.perf_counter()
            stored = nib.load(str(scan))  # int16 as stored -> segment_volume_int16
            volume = Volume(data=np.asarray(stored.dataobj), affine=stored.affine)
            labels["segment_volume_grpc"], _ = segment_volume_via_serving(volume, version_dir / "model.json",
                                                                          predict=serve, postprocess=False)
            times["segment_volume_grpc"].append(time.perf_counter() - start)
        result["seconds_best"] = {k: round(min(v), 2) for k, v in times.items()}
        result["seconds_all"] = {k: [round(t, 2) for t in v] for k, v in times.items()}
        result["cdseg_predict_stages_last"] = stage_seconds
        result["ratio_segment_volume_to_cdseg_predict"] = round(
            min(times["segment_volume_grpc"]) / min(times["cdseg_predict"]), 3
        )
        result["label_agreement"] = float(np.mean(labels["cdseg_predict"] == labels["segment_volume_grpc"]))
        result["grpc_request_mb"] = round(request_bytes[-1] / 1e6, 2)
        result["prepare_only"] = time_preparation(image, affine, predictor.card.data_config, args.repeats)
    result["machine"]["load_average_after"] = list(os.getloadavg())
    print(json.dumps(result, indent=2))
    if args.out is not None:
        from keras_cdseg.io_utils import write_json_atomic

        write_json_atomic(args.out, result)


if __name__ == "__main__":
    main()
