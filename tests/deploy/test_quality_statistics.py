"""The exported feature-shift signal: the `quality_statistics` signature and feature_statistics.json."""

import json
import shutil

import numpy as np
import pytest

from keras_cdseg.deploy.quality_statistics import FEATURE_STATISTICS_JSON, QUALITY_STATISTICS_SIGNATURE
from keras_cdseg.errors import InputError

SLICES = np.random.default_rng(3).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)


def test_signature_is_the_keras_quality_probe(version_dir, keras_generator):
    import keras
    import tensorflow as tf

    from keras_cdseg.inference.quality.signals import build_probe_model, moving_statistics

    probe, block_names = build_probe_model(keras_generator, None, organ_value=1)  # no critic beside this run
    assert block_names  # the default generator has pre-norm BatchNorm blocks
    expected = probe(SLICES, training=False)
    signature = tf.saved_model.load(str(version_dir)).signatures[QUALITY_STATISTICS_SIGNATURE]
    got = signature(slices=tf.constant(SLICES))
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name].numpy(), keras.ops.convert_to_numpy(expected[name]), atol=1e-5)
    # serving_default is untouched: the same probabilities as before the extra signature existed
    np.testing.assert_allclose(got["probabilities"].numpy(), keras_generator.predict(SLICES, verbose=0), atol=1e-6)
    assert {"entropy_sum", "organ", "region_pixels"} <= set(got) and "critic_logit" not in got
    record = json.loads((version_dir / FEATURE_STATISTICS_JSON).read_text())
    assert list(record["blocks"]) == block_names and record["organ_value"] == 1 and record["critic"] is False
    mean, variance = moving_statistics(keras_generator, block_names)[block_names[0]]
    np.testing.assert_allclose(record["blocks"][block_names[0]]["moving_variance"], variance)


def test_saved_model_probe_measures_the_same_feature_shift_as_the_keras_one(version_dir, run_dir):
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.inference.quality.signals import QualityProbe

    saved, keras_predictor = load_predictor(version_dir), load_predictor(run_dir)
    assert saved.feature_statistics is not None
    probes = [QualityProbe(saved, feature_statistics=saved.feature_statistics),
              QualityProbe(keras_predictor, generator=keras_predictor.model)]  # fmt: skip
    for probe in probes:
        np.testing.assert_allclose(probe(SLICES), keras_predictor(SLICES), atol=1e-5)
    shifts = [probe.signals()["feature_shift"] for probe in probes]
    assert shifts[0] == pytest.approx(shifts[1], rel=1e-4) and shifts[0] > 0
    assert "feature_shift" not in probes[0].unavailable


def test_a_damaged_feature_statistics_file_is_an_input_error(version_dir, tmp_path):
    from keras_cdseg.inference.predictors import load_predictor

    copy = tmp_path / "1"
    shutil.copytree(version_dir, copy)
    (copy / FEATURE_STATISTICS_JSON).write_text(json.dumps({"format": "something else", "blocks": {}}))
    with pytest.raises(InputError, match="not a keras_cdseg feature statistics file"):
        load_predictor(copy)
    (copy / FEATURE_STATISTICS_JSON).unlink()  # an export without the file (older): the signal is just absent
    assert load_predictor(copy).feature_statistics is None


def test_statistics_only_signature_still_gets_confidence_from_the_post_model(keras_generator, tmp_path):
    """An export without an organ (write_saved_model called bare) returns statistics only: the probe adds
    the confidence sums itself, and the signals equal those of the complete probe."""
    from keras_cdseg.deploy.export import write_saved_model
    from keras_cdseg.inference.quality.signals import QualityProbe

    write_saved_model(keras_generator, tmp_path / "bare")
    import tensorflow as tf

    from keras_cdseg.inference.quality.exported_statistics import load_feature_statistics

    statistics = load_feature_statistics(tf.saved_model.load(str(tmp_path / "bare")), tmp_path / "bare")
    assert statistics[2] is None
    bare = QualityProbe(None, feature_statistics=statistics)
    full = QualityProbe(None, generator=keras_generator)
    for probe in (bare, full):
        probe(SLICES)
    got, expected = bare.signals(), full.signals()
    for name in ("feature_shift", "mean_entropy", "mean_max_probability", "organ_fraction_prepared"):
        assert got[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-6), name


def test_post_norm_generator_exports_no_statistics_signature(tmp_path):
    import tensorflow as tf

    from keras_cdseg.deploy.export import write_saved_model
    from keras_cdseg.models.segmenter import build_segmenter

    model = build_segmenter((32, 32, 3), num_classes=2, base_filters=4, depth=2, norm_order="post")
    write_saved_model(model, tmp_path / "export")
    assert QUALITY_STATISTICS_SIGNATURE not in tf.saved_model.load(str(tmp_path / "export")).signatures
    assert not (tmp_path / "export" / FEATURE_STATISTICS_JSON).exists()


def test_tflite_files_carry_the_probe_and_measure_what_the_keras_one_does(version_dir, run_dir):
    from keras_cdseg.inference.predictors import load_predictor
    from keras_cdseg.inference.quality.signals import QualityProbe

    keras_predictor = load_predictor(run_dir)
    expected = QualityProbe(keras_predictor, generator=keras_predictor.model)
    expected(SLICES)
    for file_name, tolerance in (("cdseg.tflite", 1e-4), ("cdseg_float16.tflite", 5e-2)):
        lite = load_predictor(version_dir / file_name)
        assert lite.feature_statistics is not None, file_name
        probe = QualityProbe(lite, feature_statistics=lite.feature_statistics)
        np.testing.assert_allclose(probe(SLICES), keras_predictor(SLICES), atol=1e-5 if tolerance < 1e-3 else 5e-3)
        got, want = probe.signals(), expected.signals()
        for name in ("feature_shift", "mean_entropy", "mean_max_probability", "organ_fraction_prepared"):
            assert got[name] == pytest.approx(want[name], rel=tolerance, abs=1e-6), (file_name, name)
        assert "feature_shift" not in probe.unavailable


def test_is_argmax_matches_numpy_argmax_ties_included():
    import keras

    from keras_cdseg.inference.quality.signals import is_argmax

    probabilities = np.random.default_rng(0).random((2, 4, 4, 4)).astype(np.float32)
    probabilities[0, 0, 0] = [0.3, 0.3, 0.3, 0.1]  # a three-way tie: the first class wins, as in argmax
    probabilities[0, 0, 1] = [0.1, 0.4, 0.1, 0.4]
    for value in range(4):
        got = keras.ops.convert_to_numpy(is_argmax(probabilities, value))
        np.testing.assert_array_equal(got, np.argmax(probabilities, axis=-1) == value)
