"""Clients for an exported model served by TensorFlow Serving: prepared slices over REST, or raw volumes over
REST or gRPC (`segment_volume_via_serving`, the `segment_volume` signature, preprocessing in the graph).

    scan.nii.gz --prepare_volume (model.json)--> batches of slices --POST :predict (JSON)--> probabilities
                --argmax, restore to the input grid, largest component--> seg.nii.gz on the input's grid

The request body is TF Serving's columnar form for a named signature input:

    {"signature_name": "serving_default", "inputs": {"slices": [[[[0.0, 0.1, 0.2], ...]]]}}

and the reply `{"outputs": {"probabilities": [...], "labels": [...]}}` (the row form `{"predictions": [...]}`
is understood too). Volumes go in batches of `batch_size` slices, one request each, so request size stays
bounded. Preparation and restoration are `keras_cdseg.inference.predict_volume`, the code path of
`cdseg predict`, so a served model gives the same label map as the same model run locally.
"""

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from keras_cdseg.errors import InputError
from keras_cdseg.model_card import INPUT_NAME, SIGNATURE_NAME, read_model_card

DEFAULT_TIMEOUT_S = 300


def rest_url(host="localhost", port=8501, model_name="cdseg", version=None):
    """`http://host:port/v1/models/<name>[/versions/<version>]:predict`, TF Serving's REST predict endpoint."""
    versioned = f"/versions/{int(version)}" if version is not None else ""
    return f"http://{host}:{int(port)}/v1/models/{model_name}{versioned}:predict"


def build_predict_request(slices, signature_name=SIGNATURE_NAME):
    """The JSON-ready `:predict` body for prepared slices `[N, H, W, 2T+1]` (float32 values, exactly)."""
    slices = np.asarray(slices, dtype=np.float32)
    if slices.ndim != 4:
        raise ValueError(f"slices must be [N, H, W, 2T+1], got shape {slices.shape}")
    # float32 -> Python float is exact, and TF Serving parses the decimal back to the same float32.
    return {"signature_name": signature_name, "inputs": {INPUT_NAME: slices.tolist()}}


def parse_predict_response(response):
    """`{output name: np.ndarray}` from a `:predict` reply (columnar `outputs` or row `predictions` form).

    Raises:
        InputError: the reply carries an `error` or has neither form.
    """
    if isinstance(response, (bytes, str)):
        response = json.loads(response)
    if "error" in response:
        raise InputError("TF Serving", str(response["error"]).splitlines()[0])
    if "outputs" in response:
        outputs = response["outputs"]
        if not isinstance(outputs, dict):  # a single-output signature replies with the bare tensor
            outputs = {"probabilities": outputs}
        return {name: np.asarray(value) for name, value in outputs.items()}
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            return {name: np.asarray([row[name] for row in rows]) for name in rows[0]}
        return {"probabilities": np.asarray(rows)}
    raise InputError("TF Serving", "reply has neither 'outputs' nor 'predictions'")


def http_post_json(url, body, timeout_s=DEFAULT_TIMEOUT_S):
    """POSTs JSON bytes to `url` and returns the reply bytes; InputError naming the URL on failure."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            return reply.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace").strip().splitlines()
        raise InputError(url, f"HTTP {e.code}: {detail[0][:200] if detail else e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise InputError(url, f"cannot reach TF Serving ({getattr(e, 'reason', e)})") from None


class RestPredictor:
    """A predictor (`slices -> probabilities`) that asks a TF Serving REST endpoint.

    Args:
        url: str. The `:predict` URL (see `rest_url`).
        card: `ModelCard` or a path to the export's `model.json` (or its version directory).
        post: callable(url, body bytes) -> reply bytes. Defaults to `http_post_json`; tests pass a function
            that answers from a SavedModel loaded in-process.
    """

    def __init__(self, url, card, post=None):
        self.url = url
        self.card = read_model_card(card) if isinstance(card, (str, Path)) else card
        self.post = post or http_post_json
        self.num_requests = 0

    def __call__(self, slices):
        body = json.dumps(build_predict_request(slices)).encode("utf-8")
        outputs = parse_predict_response(self.post(self.url, body))
        self.num_requests += 1
        probabilities = np.asarray(outputs["probabilities"], dtype=np.float32)
        if probabilities.shape[:3] != np.shape(slices)[:3]:
            raise InputError(self.url, f"reply has shape {probabilities.shape} for {np.shape(slices)[0]} slices")
        return probabilities

    def describe(self):
        return f"tf_serving {self.url}"


def segment_nifti_via_rest(image_path, out_path, card, url=None, post=None, batch_size=8, postprocess=True):
    """Segments a NIfTI scan with a served model and writes the uint8 label map on the scan's grid.

    Args:
        image_path: path of the input scan.
        out_path: path of the output label NIfTI (written atomically), or None to only return labels.
        card: `ModelCard`, or the path of the export's `model.json` (or version directory).
        url: str or None. The `:predict` URL; None means `rest_url()` (localhost:8501, model "cdseg").
        post: see `RestPredictor`.
        batch_size: int. Slices per request. Defaults to 8.
        postprocess: bool. Largest 3D component of the card's classes, as `cdseg predict`. Defaults to True.

    Returns:
        The uint8 label array on the input grid.
    """
    from keras_cdseg.data.nifti_io import load_image, save_like
    from keras_cdseg.inference.volume import predict_volume

    predictor = RestPredictor(url or rest_url(), card, post)
    volume = load_image(image_path)
    largest = predictor.card.largest_component_classes if postprocess else ()
    labels = predict_volume(predictor, volume, predictor.card.data_config, largest, batch_size).labels
    if out_path is not None:
        save_like(labels, volume, out_path, dtype=np.uint8)
    return labels


# --- Raw volumes: the `segment_volume` signature (preprocessing inside the SavedModel) -------------------
#
#   scan --reorient to canonical RAS (lossless: permutation and flips)--> volume [X, Y, Z], spacing_mm [3]
#        --REST JSON or gRPC PredictRequest--> labels [X, Y, Z] uint8, voxel_counts, volumes_ml
#        --back to the scan's axis order, optional largest component--> labels on the scan's grid
#
# Everything between is in the graph (keras_cdseg.deploy.volume_signature), so a client in any language
# only reorients, sends two tensors and reorients back.

DEFAULT_GRPC_TARGET = "localhost:8500"


def to_canonical(volume):
    """`(data [X, Y, Z] in RAS voxel order, spacing_mm float64 [3], orientation)` of a `Volume`.

    The orientation (nibabel, input axes -> RAS) undoes the step in `from_canonical`. Oblique scans go to
    the closest RAS axes, as in `prepare_volume`; the spacing is the length of each canonical axis.
    """
    from nibabel import orientations as nio

    affine = np.asarray(volume.affine, dtype=np.float64)
    data = np.asarray(volume.data)
    orientation = nio.io_orientation(affine)
    canonical_affine = affine @ nio.inv_ornt_aff(orientation, data.shape)
    spacing_mm = np.sqrt((canonical_affine[:3, :3] ** 2).sum(axis=0))
    return np.ascontiguousarray(nio.apply_orientation(data, orientation)), spacing_mm, orientation


def from_canonical(array, orientation):
    """Inverse of `to_canonical` for an array on the canonical grid (e.g. the returned labels)."""
    from nibabel import orientations as nio

    ras = np.array([[0, 1], [1, 1], [2, 1]])
    return nio.apply_orientation(np.asarray(array), nio.ornt_transform(ras, np.asarray(orientation)))


def _volume_signature(data):
    from keras_cdseg.deploy.volume_signature import VOLUME_INT16_SIGNATURE_NAME, VOLUME_SIGNATURE_NAME

    return VOLUME_INT16_SIGNATURE_NAME if np.asarray(data).dtype == np.int16 else VOLUME_SIGNATURE_NAME


def _volume_inputs(data, spacing_mm):
    from keras_cdseg.deploy.volume_signature import SPACING_INPUT_NAME, VOLUME_INPUT_NAME

    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"volume must be [X, Y, Z], got shape {data.shape}")
    dtype = np.int16 if data.dtype == np.int16 else np.float32
    return {VOLUME_INPUT_NAME: data.astype(dtype, copy=False),
            SPACING_INPUT_NAME: np.asarray(spacing_mm, dtype=np.float64).reshape(3)}  # fmt: skip


def build_volume_rest_request(data, spacing_mm):
    """The REST `:predict` body for `segment_volume` (int16 data: `segment_volume_int16`), columnar form."""
    inputs = _volume_inputs(data, spacing_mm)
    return {"signature_name": _volume_signature(data), "inputs": {k: v.tolist() for k, v in inputs.items()}}


def build_volume_grpc_request(data, spacing_mm, model_name="cdseg", version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `segment_volume` (needs tensorflow-serving-api).

    The volume travels as a DT_INT16 or DT_FLOAT TensorProto (raw bytes, no text), the spacing as DT_DOUBLE.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = _volume_signature(data)
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in _volume_inputs(data, spacing_mm).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def parse_grpc_response(response):
    """`{output name: np.ndarray}` of a `PredictResponse`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def grpc_predict_function(target=DEFAULT_GRPC_TARGET, timeout_s=DEFAULT_TIMEOUT_S):
    """`request -> response` over TF Serving's gRPC port (`PredictionService.Predict`), large messages allowed."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    limit = (1 << 31) - 1
    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", limit),
                                                     ("grpc.max_receive_message_length", limit)])  # fmt: skip
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def predict(request):
        try:
            return stub.Predict(request, timeout=timeout_s)
        except grpc.RpcError as e:
            detail = (str(e.details()).splitlines() or [""])[0][:200]
            raise InputError(target, f"TF Serving gRPC {e.code().name}: {detail}") from None

    return predict


def segment_volume_via_serving(volume, card, transport="grpc", predict=None, model_name="cdseg", version=None,
                               url=None, postprocess=True):
    """Segments a loaded `Volume` with the served `segment_volume` signature; labels on the volume's grid.

    Args:
        volume: `Volume` (any orientation). float32 data is sent as float32; int16 data as int16.
        card: `ModelCard` or path of the export's model.json (for labels and post-processing).
        transport: "grpc" (PredictRequest protobuf) or "rest" (JSON). Defaults to "grpc".
        predict: callable or None. gRPC: `PredictRequest -> PredictResponse` (default `grpc_predict_function()`);
            REST: `(url, body bytes) -> reply bytes` (default `http_post_json`). Tests pass in-process ones.
        model_name, version: the served model (gRPC model spec; REST URL when `url` is None).
        url: REST `:predict` URL; None means `rest_url(model_name=model_name, version=version)`.
        postprocess: bool. Largest 3D component of the card's classes, on the client (not in the graph).

    Returns:
        `(labels uint8 on the volume's grid, {class name: volume in mL})`; volumes are recounted after
        post-processing.
    """
    card = read_model_card(card) if isinstance(card, (str, Path)) else card
    data, spacing_mm, orientation = to_canonical(volume)
    if transport == "grpc":
        request = build_volume_grpc_request(data, spacing_mm, model_name, version)
        outputs = parse_grpc_response((predict or grpc_predict_function())(request))
    elif transport == "rest":
        url = url or rest_url(model_name=model_name, version=version)
        body = json.dumps(build_volume_rest_request(data, spacing_mm)).encode("utf-8")
        outputs = parse_predict_response((predict or http_post_json)(url, body))
    else:
        raise ValueError(f"transport must be 'grpc' or 'rest'. Received: transport={transport!r}")
    labels = np.asarray(outputs["labels"], dtype=np.uint8)
    if labels.shape != data.shape:
        raise InputError(url or "TF Serving", f"reply labels have shape {labels.shape} for a volume of {data.shape}")
    counts = np.asarray(outputs["voxel_counts"], dtype=np.int64)
    if postprocess and card.largest_component_classes:
        from keras_cdseg.inference.postprocessing import keep_largest_component

        labels = keep_largest_component(labels, connectivity=26, classes=list(card.largest_component_classes))
        counts = np.bincount(labels.ravel(), minlength=card.num_classes)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    volumes_ml = {name: float(counts[i]) * voxel_ml for i, name in enumerate(card.class_names) if i != 0}
    return from_canonical(labels, orientation), volumes_ml
