"""The `segment_volume` signature: preprocessing, network and restoration inside the SavedModel.

Checked against `cdseg predict --no-postprocess` on the real CT and on synthetic CT/MR phantoms, and through
the serving client with the exact REST body and gRPC `PredictRequest` it would send, run in-process through
the reloaded SavedModel (no server).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from deploy_fixtures import IMAGE_SIZE, make_run_dir, write_nifti

from keras_cdseg.config import DataConfig
from keras_cdseg.data.nifti_io import Volume, load_image
from keras_cdseg.data.phantoms.synthetic import make_ct_case, make_mr_case
from keras_cdseg.data.preprocessing import _MAX_PERCENTILE_SAMPLES, intensity_limits, prepare_volume
from keras_cdseg.deploy.serving_client import (
    build_volume_grpc_request,
    build_volume_rest_request,
    from_canonical,
    parse_grpc_response,
    segment_volume_via_serving,
    to_canonical,
)

REAL_CT = Path(__file__).resolve().parents[1] / "data" / "real" / "ct_abdomen_3mm.nii.gz"


@pytest.fixture(scope="module")
def threshold_version_dir(tmp_path_factory):
    """An export whose network labels 'liver' where the centre slice's prepared intensity exceeds 0.55.

    A real Keras model (a fixed 1×1 convolution and softmax, saved and exported as usual) whose labels
    cover a large part of every scan, so that an error anywhere in preparation or restoration shows up in
    the agreement (the untrained test generator labels almost nothing).
    """
    import keras

    from keras_cdseg.deploy.export import export_model

    run = make_run_dir(tmp_path_factory.mktemp("threshold") / "run")
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    head = keras.layers.Conv2D(2, 1, activation="softmax", name="threshold")
    model = keras.Model(inputs, head(inputs))
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 1, 1] = 40.0
    head.set_weights([kernel, np.array([0.0, -40.0 * 0.55], np.float32)])
    model.save(run / "best_generator.keras")
    return export_model(run, root=run.parent / "saved_models").version_dir


@pytest.fixture(scope="module")
def signatures(threshold_version_dir):
    import tensorflow as tf

    return tf.saved_model.load(str(threshold_version_dir)).signatures


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """The real CT and two phantoms (CT int16, MR float), stored in non-RAS orders, as NIfTI files."""
    folder = tmp_path_factory.mktemp("scans")
    ct = make_ct_case(np.random.default_rng(3), orientation="LPS")
    mr = make_mr_case(np.random.default_rng(4), orientation="PIR")
    paths = {"real_ct": REAL_CT}
    paths["synthetic_ct"] = write_nifti(folder / "synthetic_ct.nii.gz", ct.image, ct.affine)
    paths["synthetic_mr"] = write_nifti(folder / "synthetic_mr.nii.gz", mr.image.astype(np.float32), mr.affine)
    return paths


def _graph_prepared(volume, config, max_samples=_MAX_PERCENTILE_SAMPLES):
    import tensorflow as tf

    from keras_cdseg.deploy.volume_signature import prepare_canonical

    data, spacing_mm, _ = to_canonical(volume)
    # Traced, as in the exported signature (graph mode types some constants unlike eager execution).
    graph = tf.function(lambda v, s: prepare_canonical(v, s, config, max_samples))
    return graph(tf.constant(data, tf.float32), tf.constant(spacing_mm)).numpy()


@pytest.mark.parametrize("config", [DataConfig(image_size=32, target_spacing_mm=4.0),
                                    DataConfig(image_size=96, target_spacing_mm=2.3, clip_percentiles=(2.0, 97.0)),
                                    DataConfig(image_size=64, target_spacing_mm=3.1, intensity="ranks"),
                                    DataConfig(image_size=64, target_spacing_mm=3.1, intensity="landmarks")],
                         ids=["downsample-crop", "pad", "ranks", "landmarks"])  # fmt: skip
def test_graph_preparation_is_bit_identical_to_prepare_volume(scans, config):
    for path in scans.values():
        volume = load_image(path)
        np.testing.assert_array_equal(_graph_prepared(volume, config), prepare_volume(volume, config).image)


def test_strided_percentiles_match_numpy_for_a_ras_stored_volume_above_the_sample_limit():
    from keras_cdseg.deploy.volume_signature import intensity_limits as graph_limits

    data = np.asfortranarray(np.random.default_rng(0).normal(0, 300, (131, 127, 11)).astype(np.float32))
    limits = graph_limits(data.transpose(0, 1, 2), (0.5, 99.5), max_samples=50_001)
    assert tuple(float(v) for v in limits) == intensity_limits(data, (0.5, 99.5), max_samples=50_001)
    constant = np.full((4, 5, 3), 7.0, np.float32)
    assert tuple(float(v) for v in graph_limits(constant, (0.5, 99.5), 10)) == (7.0, 7.0)


def test_canonical_round_trip_is_lossless():
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.array([[0, 0, -2.0, 10], [-1.5, 0, 0, 3], [0, 3.0, 0, -7], [0, 0, 0, 1]])
    canonical, spacing_mm, orientation = to_canonical(Volume(data=data, affine=affine))
    assert canonical.shape == (6, 4, 5) and spacing_mm.tolist() == [2.0, 1.5, 3.0]
    assert canonical[5, 3, 0] == data[0, 0, 0]  # array axis 0 runs posterior, axis 2 left
    np.testing.assert_array_equal(from_canonical(canonical, orientation), data)


@pytest.mark.parametrize("case", ["real_ct", "synthetic_ct", "synthetic_mr"])
def test_segment_volume_agrees_with_cdseg_predict(tmp_path, scans, threshold_version_dir, signatures, case):
    import tensorflow as tf

    from cdseg.main import cli

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["predict", str(scans[case]), "-o", str(out), "--model",
                                      str(threshold_version_dir), "--no-postprocess"])  # fmt: skip
    assert result.exit_code == 0, result.output
    name = scans[case].name[: -len(".nii.gz")]
    expected = np.asarray(nib.load(str(out / f"{name}.nii.gz")).dataobj)
    assert 0.03 < expected.mean() < 0.97  # both classes are well represented
    volume = load_image(scans[case])
    data, spacing_mm, orientation = to_canonical(volume)
    outputs = signatures["segment_volume"](volume=tf.constant(data, tf.float32), spacing_mm=tf.constant(spacing_mm))
    labels = from_canonical(outputs["labels"].numpy(), orientation)
    assert labels.dtype == np.uint8 and labels.shape == expected.shape
    agreement = float(np.mean(labels == expected))
    assert agreement >= 0.999, f"{case}: {agreement:.5f} of voxels agree"
    counts = np.bincount(outputs["labels"].numpy().ravel(), minlength=2)
    np.testing.assert_array_equal(outputs["voxel_counts"].numpy(), counts)
    np.testing.assert_allclose(outputs["volumes_ml"].numpy(), counts * np.prod(spacing_mm) / 1000, rtol=1e-12)
    statistics = json.loads((out / "statistics.json").read_text())["cases"][name]["classes"]["liver"]
    assert abs(outputs["volumes_ml"].numpy()[1] - statistics["volume_ml"]) <= 0.001 * max(statistics["volume_ml"], 1)


def test_int16_signature_gives_the_float32_answer(scans, signatures):
    import tensorflow as tf

    data, spacing_mm, _ = to_canonical(Volume(data=np.asarray(nib.load(str(scans["synthetic_ct"])).dataobj),
                                              affine=nib.load(str(scans["synthetic_ct"])).affine))  # fmt: skip
    assert data.dtype == np.int16
    as_int16 = signatures["segment_volume_int16"](volume=tf.constant(data), spacing_mm=tf.constant(spacing_mm))
    as_float = signatures["segment_volume"](volume=tf.constant(data, tf.float32), spacing_mm=tf.constant(spacing_mm))
    np.testing.assert_array_equal(as_int16["labels"].numpy(), as_float["labels"].numpy())


def _serve_grpc_in_process(signatures, received):
    """Plays TF Serving's gRPC Predict: the real PredictRequest protobuf in, a PredictResponse out."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    def predict(request):
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
        received.append(request)
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        outputs = signatures[request.model_spec.signature_name](**inputs)
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response

    return predict


def _serve_rest_in_process(signatures, received):
    """Plays TF Serving's REST handler: JSON numbers cast to the signature's input dtypes."""
    import tensorflow as tf

    def post(url, body):
        request = json.loads(body)
        received.append((url, request))
        function = signatures[request["signature_name"]]
        specs = function.structured_input_signature[1]
        inputs = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in request["inputs"].items()}
        outputs = function(**inputs)
        return json.dumps({"outputs": {name: value.numpy().tolist() for name, value in outputs.items()}}).encode()

    return post


def test_grpc_and_rest_clients_send_the_documented_requests_and_match_cdseg_predict(tmp_path, scans, signatures,
                                                                                    threshold_version_dir):  # fmt: skip
    import tensorflow as tf

    from keras_cdseg.deploy.predict import predict_cases
    from keras_cdseg.inference.predictors import load_predictor

    version_dir = threshold_version_dir
    predict_cases([scans["real_ct"]], tmp_path / "local", load_predictor(version_dir))  # largest component too
    expected = np.asarray(nib.load(str(tmp_path / "local" / "ct_abdomen_3mm.nii.gz")).dataobj)
    assert expected.mean() > 0.03
    volume = load_image(scans["real_ct"])
    grpc_requests, rest_requests = [], []
    labels, volumes_ml = segment_volume_via_serving(volume, version_dir / "model.json", transport="grpc",
                                                    predict=_serve_grpc_in_process(signatures, grpc_requests),
                                                    version=1)  # fmt: skip
    assert float(np.mean(labels == expected)) >= 0.999
    statistics = json.loads((tmp_path / "local" / "statistics.json").read_text())["cases"]["ct_abdomen_3mm"]
    assert volumes_ml["liver"] == pytest.approx(statistics["classes"]["liver"]["volume_ml"], rel=1e-3)
    (request,) = grpc_requests
    assert request.model_spec.name == "cdseg" and request.model_spec.signature_name == "segment_volume"
    assert request.model_spec.version.value == 1
    assert request.inputs["volume"].dtype == tf.float32.as_datatype_enum
    assert request.inputs["spacing_mm"].dtype == tf.float64.as_datatype_enum
    data, spacing_mm, _ = to_canonical(volume)
    assert request == build_volume_grpc_request(data, spacing_mm, "cdseg", 1)
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["volume"]), data)

    rest_labels, rest_volumes = segment_volume_via_serving(volume, version_dir / "model.json", transport="rest",
                                                           predict=_serve_rest_in_process(signatures, rest_requests))
    np.testing.assert_array_equal(rest_labels, labels)
    assert rest_volumes == volumes_ml
    (url, body), = rest_requests
    assert url == "http://localhost:8501/v1/models/cdseg:predict"
    assert body == json.loads(json.dumps(build_volume_rest_request(data, spacing_mm)))
    assert set(body["inputs"]) == {"volume", "spacing_mm"} and body["signature_name"] == "segment_volume"


def test_grpc_response_parsing_round_trips_tensors():
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.outputs["labels"].CopyFrom(tf.make_tensor_proto(np.array([[[0, 1]]], np.uint8)))
    parsed = parse_grpc_response(response)
    assert parsed["labels"].dtype == np.uint8 and parsed["labels"].tolist() == [[[0, 1]]]


def test_saved_model_cli_lists_both_signatures_and_model_json_describes_the_volume_one(version_dir):
    cli = shutil.which("saved_model_cli")
    assert cli, "saved_model_cli (installed with tensorflow) is not on PATH"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([cli, "show", "--all", "--dir", str(version_dir)], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "signature_def['serving_default']" in text
    volume = text[text.index("signature_def['segment_volume']"):]
    volume = volume[: volume.index("signature_def[", 1)] if "signature_def[" in volume[1:] else volume
    for line in ("inputs['volume'] tensor_info:", "inputs['spacing_mm'] tensor_info:", "outputs['labels'] tensor_info:",
                 "outputs['volumes_ml'] tensor_info:", "outputs['voxel_counts'] tensor_info:",
                 "shape: (-1, -1, -1)", "DT_DOUBLE", "DT_UINT8"):  # fmt: skip
        assert line in volume, line
    assert "signature_def['segment_volume_int16']" in text and "DT_INT16" in text
    record = json.loads((version_dir / "model.json").read_text())["volume_signature"]
    assert record["names"] == {"float32": "segment_volume", "int16": "segment_volume_int16"}
    assert "client" in record["postprocessing"] and record["batch_size"] == 16


def test_tflite_keeps_only_the_slice_models(version_dir):
    from keras_cdseg.inference.predictors import tflite_interpreter_class

    interpreter_class, _ = tflite_interpreter_class()
    interpreter = interpreter_class(model_path=str(version_dir / "cdseg.tflite"))
    # The network and its quality probe, not the volume signatures (preprocessing in the graph).
    assert sorted(interpreter.get_signature_list()) == ["quality_statistics", "serving_default"]
