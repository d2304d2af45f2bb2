"""The papers' values: the defaults of every method and term, or for the scale-free feature-map terms,
their `authors_hparams` (the papers' α in the authors' reductions)."""

import inspect

import pytest

from keras_tl import methods, regularizers
from keras_tl.channel_weights import delta_channel_weights
from keras_tl.regularizers import feature_maps

# class -> {argument: the paper's value}; the source of each value is in the class's docstring.
PAPER_DEFAULTS = {
    regularizers.L2SP: {"alpha": 0.01, "beta": 0.01},  # DELTA Sec. 4.1
    regularizers.L2SPAttention: {"alpha": 0.01, "beta": 0.01},
    regularizers.GCA: {"reduction": 4},  # Table 6
    regularizers.BSS: {"eta": 0.001, "k": 1},  # Chen et al. Sec. 5
    regularizers.CoTuning: {"lam": 2.3},  # official trade_off
    regularizers.LwF: {"lam": 1.0, "temperature": 2.0},  # Li & Hoiem Sec. 3
    regularizers.DiscrepantDiffusion: {"lam": 0.001},  # DSD Sec. 4.6
}


@pytest.mark.parametrize("cls", sorted(PAPER_DEFAULTS, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_class_defaults(cls):
    parameters = inspect.signature(cls.__init__).parameters
    for name, value in PAPER_DEFAULTS[cls].items():
        assert parameters[name].default == value, (cls.__name__, name)


FEATURE_MAP_TERMS = [regularizers.FeatureMapDistillation, regularizers.DELTA, regularizers.AST,
                     regularizers.ACT, regularizers.SPA, regularizers.GCA]


@pytest.mark.parametrize("cls", FEATURE_MAP_TERMS, ids=lambda c: c.__name__)
def test_feature_map_terms_default_to_the_scale_free_alpha(cls):
    parameters = inspect.signature(cls.__init__).parameters
    assert parameters["alpha"].default == feature_maps.RELATIVE_ALPHA and parameters["relative"].default is True


def test_the_authors_settings_of_the_feature_map_methods_are_the_papers():
    # α = 0.01: DELTA Sec. 4.1 (KnowDist, DELTA, code reg_fea_map / reg_att_fea_map summing over the
    # batch); AFA's code; Kang & Kang Sec. 4 (SPA/GCA: 0.005 to 0.1).
    for cls in (methods.KnowDist, methods.DELTA, methods.AFA, methods.SPAGCA):
        assert cls.authors_hparams == {"alpha": 0.01, "relative": False}, cls
        assert cls.defaults()["alpha"] == feature_maps.RELATIVE_ALPHA and cls.defaults()["relative"] is True
    (knowdist, _) = methods.KnowDist.authors().setup().regularizers
    assert knowdist.get_config()["reduction"] == "sum" and knowdist.alpha == 0.01 and not knowdist.relative
    assert [r.alpha for r in methods.SPAGCA.authors().setup().regularizers[:2]] == [0.01, 0.01]


def test_method_defaults_match_the_classes():
    delta = methods.DELTA.defaults()
    assert delta["reduction"] == "sum"
    assert delta["normalization"] == "zscore_softmax" and delta["temperature"] == 5.0
    assert delta["num_batches"] == 4  # the released code's 4 batches of 64
    weights = inspect.signature(delta_channel_weights).parameters
    assert weights["normalization"].default == "zscore_softmax" and weights["batch_size"].default == 64
    assert methods.CoTuning.defaults()["lam"] == 2.3


def test_batch_size_conversion():
    # The paper's α at batch 64 gives the same balance as α·64/B at batch B.
    assert feature_maps.batch_size_equivalent_alpha(0.01, 32) == pytest.approx(0.02)
    assert feature_maps.batch_size_equivalent_alpha(0.01, 64) == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"Expected batch_size to be a positive int. Received: batch_size=0"):
        feature_maps.batch_size_equivalent_alpha(0.01, 0)
