"""The TF Serving REST client, answered by the exported SavedModel loaded in-process.

`serve_rest` plays TF Serving's REST `:predict` handler: it receives the exact bytes the client would POST,
decodes the JSON the way TF Serving does (numbers -> the signature's float32 input) and replies in TF
Serving's columnar form.
"""

import json
import math

import numpy as np
import pytest
from deploy_fixtures import affine_for, blob_image, write_nifti

from keras_cdseg.deploy.predict import predict_cases
from keras_cdseg.errors import InputError
from keras_cdseg.inference.predictors import load_predictor
from keras_cdseg.deploy.serving_client import (
    RestPredictor,
    build_predict_request,
    parse_predict_response,
    rest_url,
    segment_nifti_via_rest,
)


@pytest.fixture(scope="module")
def serve_rest(version_dir):
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    received = []

    def post(url, body):
        assert isinstance(body, bytes)
        request = json.loads(body)
        received.append((url, request))
        assert request["signature_name"] == "serving_default" and list(request["inputs"]) == ["slices"]
        outputs = signature(slices=tf.constant(request["inputs"]["slices"], dtype=tf.float32))
        return json.dumps({"outputs": {name: value.numpy().tolist() for name, value in outputs.items()}}).encode()

    post.received = received
    return post


def test_request_body_is_tf_serving_columnar_json_with_exact_floats():
    slices = np.random.default_rng(1).random((2, 4, 4, 3), dtype=np.float32)
    body = json.loads(json.dumps(build_predict_request(slices)))
    assert body["signature_name"] == "serving_default" and set(body) == {"signature_name", "inputs"}
    np.testing.assert_array_equal(np.asarray(body["inputs"]["slices"], dtype=np.float32), slices)


def test_replies_in_columnar_and_row_form_and_errors():
    columnar = parse_predict_response(b'{"outputs": {"probabilities": [[0.25, 0.75]], "labels": [1]}}')
    np.testing.assert_array_equal(columnar["labels"], [1])
    rows = parse_predict_response({"predictions": [{"probabilities": [0.2, 0.8], "labels": 1},
                                                   {"probabilities": [0.9, 0.1], "labels": 0}]})  # fmt: skip
    np.testing.assert_array_equal(rows["labels"], [1, 0])
    assert rows["probabilities"].shape == (2, 2)
    with pytest.raises(InputError, match="Servable not found"):
        parse_predict_response('{"error": "Servable not found for request"}')
    assert rest_url(model_name="cdseg", version=3) == "http://localhost:8501/v1/models/cdseg/versions/3:predict"


def test_rest_client_writes_the_same_label_map_as_cdseg_predict(tmp_path, version_dir, serve_rest):
    shape = (40, 30, 11)
    affine = affine_for("LPS", (3.2, 3.6, 4.5), shape, rotation_deg=10.0)
    image, _ = blob_image(shape, affine)
    scan = write_nifti(tmp_path / "scan.nii.gz", image, affine, qform_code=1, sform_code=2)

    labels = segment_nifti_via_rest(scan, tmp_path / "rest" / "scan.nii.gz", version_dir / "model.json",
                                    url=rest_url(), post=serve_rest, batch_size=4)  # fmt: skip
    predict_cases([scan], tmp_path / "local", load_predictor(version_dir))

    import nibabel as nib

    rest_img = nib.load(str(tmp_path / "rest" / "scan.nii.gz"))
    local_img = nib.load(str(tmp_path / "local" / "scan.nii.gz"))
    np.testing.assert_array_equal(np.asarray(rest_img.dataobj), np.asarray(local_img.dataobj))
    np.testing.assert_array_equal(np.asarray(rest_img.dataobj), labels)
    np.testing.assert_array_equal(rest_img.affine, local_img.affine)
    assert rest_img.header.get_sform(coded=True)[1] == 2
    assert len(serve_rest.received) == math.ceil(shape[2] / 4)
    assert serve_rest.received[0][0] == "http://localhost:8501/v1/models/cdseg:predict"
    assert np.asarray(serve_rest.received[0][1]["inputs"]["slices"]).shape == (4, 32, 32, 3)


def test_reply_with_the_wrong_number_of_slices_is_an_input_error(version_dir):
    def short_reply(url, body):
        return json.dumps({"outputs": {"probabilities": np.zeros((1, 32, 32, 2)).tolist()}}).encode()

    predictor = RestPredictor("http://x:8501/v1/models/cdseg:predict", version_dir, post=short_reply)
    with pytest.raises(InputError, match="reply has shape"):
        predictor(np.zeros((3, 32, 32, 3), np.float32))
