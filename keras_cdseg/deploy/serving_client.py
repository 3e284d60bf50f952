"""A client for an exported model served by TensorFlow Serving's REST API: NIfTI in, NIfTI out.

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
from keras_cdseg.deploy.export import INPUT_NAME, SIGNATURE_NAME, read_model_card

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
