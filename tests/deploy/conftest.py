"""Session-wide fixtures of the deployment tests: one tiny run directory and one export of it."""

import pytest
from deploy_fixtures import make_run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="session")
def export_root(run_dir, tmp_path_factory):
    """`saved_models/` holding cdseg/1 with SavedModel, model.json and float32/float16/dynamic TFLite files."""
    from keras_cdseg.deploy.export import export_model

    root = tmp_path_factory.mktemp("exports") / "saved_models"
    export_model(run_dir, root=root, name="cdseg", tflite=True, quantize=("float16", "dynamic"))
    return root


@pytest.fixture(scope="session")
def version_dir(export_root):
    return export_root / "cdseg" / "1"


@pytest.fixture(scope="session")
def keras_generator(run_dir):
    from keras_cdseg.models.saving import load_generator

    return load_generator(run_dir / "best_generator.keras")
