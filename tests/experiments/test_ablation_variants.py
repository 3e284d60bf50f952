"""The variants of Tables 2, 4, 5 and the run configs they make."""

import pytest

from keras_cdseg.errors import InputError
from keras_cdseg.experiments.variants import CONTEXT_ROWS, REFERENCE, VARIANTS_BY_KEY, AblationSettings, select_variants


def keys(variants):
    return [v.key for v in variants]


def test_tables_select_their_variants_and_always_the_reference():
    assert keys(select_variants([2])) == [
        "post_bn_nocan", "pre_bn_nocan", "post_bn_can", "pre_in_can", "pre_bn_can", "att_dcn", "cond_dcn"
    ]  # fmt: skip
    assert keys(select_variants([4])) == ["pre_bn_can", "ct_only", "mr_only"]
    contexts = [f"ctx{t}_{n}" for n in ("bn", "in") for t in (0, 2, 3)]
    assert keys(select_variants([5])) == ["pre_in_can", "pre_bn_can"] + contexts
    assert len(select_variants()) == 15
    assert keys(select_variants(only=["cond_dcn"])) == ["pre_bn_can", "cond_dcn"]
    with pytest.raises(InputError, match="unknown table"):
        select_variants([6])
    with pytest.raises(InputError, match="unknown variant"):
        select_variants(only=["pre_gn_can"])


def test_every_variant_changes_only_its_own_fields_from_the_reference():
    settings = AblationSettings(steps=10)
    reference = settings.run_config(VARIANTS_BY_KEY[REFERENCE], 2, "/data", "/cache")
    assert (reference.model.norm, reference.model.norm_order, reference.model.architecture) == ("batch", "pre", "dcn")
    assert reference.train.adversarial_weight > 0 and reference.train.seed == 2 and reference.data.context == 1
    assert reference.train.val_every == 5 and reference.cache_dir == "/cache"
    expected = {
        "post_bn_nocan": {"norm_order": "post", "adversarial_weight": 0.0},
        "pre_bn_nocan": {"adversarial_weight": 0.0},
        "post_bn_can": {"norm_order": "post"},
        "pre_in_can": {"norm": "instance"},
        "att_dcn": {"architecture": "attention"},
        "cond_dcn": {"architecture": "conditional"},
        "ct_only": {"modalities": ("CT",)},
        "mr_only": {"modalities": ("MR",)},
        "ctx0_bn": {"context": 0},
        "ctx3_in": {"context": 3, "norm": "instance"},
    }
    flat_reference = {**vars(reference.data), **vars(reference.model), **vars(reference.train)}
    for key, changes in expected.items():
        config = settings.run_config(VARIANTS_BY_KEY[key], 2, "/data", "/cache")
        flat = {**vars(config.data), **vars(config.model), **vars(config.train)}
        assert {k: v for k, v in flat.items() if flat_reference[k] != v} == changes, key


def test_table5_rows_reuse_the_table2_runs_for_t1():
    assert CONTEXT_ROWS[(1, "bn")] == REFERENCE and CONTEXT_ROWS[(1, "in")] == "pre_in_can"
    assert all(key in VARIANTS_BY_KEY for key in CONTEXT_ROWS.values())


def test_image_size_must_fit_the_depth():
    with pytest.raises(InputError, match="divisible"):
        AblationSettings(image_size=36, depth=3)
