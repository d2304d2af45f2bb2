"""keras_tl's terms against the authors' released formulas (`oracles.py`), times the documented constant.

Each test runs on the backend of the session (run the file under KERAS_BACKEND=tensorflow
and =jax) on several map shapes and batch sizes. The constants are the ones the classes'
docstrings state; 1 means "the paper's α at any batch size is the authors' term".
"""

import numpy as np
import pytest
from keras import ops

from keras_tl import relationship as relationship_lib
from keras_tl.channel_weights import normalize_importance
from keras_tl.regularizers import BSS, DELTA, L2SP, CoTuning, FeatureMapDistillation, LwF
from tests.reference import oracles

# (batch, [(H, W, C) per tap]): one and several taps, square and not, batch 1 to 16.
CASES = [
    (1, [(4, 4, 3)]),
    (3, [(4, 3, 5), (2, 2, 6)]),
    (8, [(7, 7, 4), (5, 3, 2), (1, 1, 9)]),
    (16, [(6, 6, 8), (3, 3, 16)]),
]


def maps(batch, shapes, seed):
    """`({tap: NHWC map}, [NCHW map])`: the same random maps in keras_tl's and the authors' layout."""
    rng = np.random.default_rng(seed)
    nhwc = {f"tap_{i}": rng.normal(size=(batch, *shape)).astype("float32") for i, shape in enumerate(shapes)}
    return nhwc, [np.transpose(nhwc[f"tap_{i}"], (0, 3, 1, 2)).astype("float64") for i in range(len(shapes))]


def value(term):
    return float(ops.convert_to_numpy(term))


@pytest.mark.parametrize("batch, shapes", CASES)
def test_feature_map_distillation_is_reg_fea_map(batch, shapes):
    target, target_nchw = maps(batch, shapes, 0)
    source, source_nchw = maps(batch, shapes, 1)
    want = oracles.reg_fea_map(source_nchw, target_nchw)
    # reduction="sum" (default): constant α; reduction="mean": α / B.
    assert value(FeatureMapDistillation(relative=False, alpha=0.01)(target, source)) == pytest.approx(0.01 * want, rel=1e-5)
    got_mean = value(FeatureMapDistillation(relative=False, alpha=0.01, reduction="mean")(target, source))
    assert got_mean == pytest.approx(0.01 * want / batch, rel=1e-5)


@pytest.mark.parametrize("batch, shapes", CASES)
def test_delta_is_reg_att_fea_map(batch, shapes):
    target, target_nchw = maps(batch, shapes, 2)
    source, source_nchw = maps(batch, shapes, 3)
    rng = np.random.default_rng(4)
    raw = {f"tap_{i}": rng.exponential(0.01, size=shape[-1]).tolist() for i, shape in enumerate(shapes)}
    # The channel weights: the released code's softmax(zscore / 5) is `normalize_importance`'s default.
    authors_weights = [oracles.delta_channel_weights(raw[f"tap_{i}"]) for i in range(len(shapes))]
    weights = normalize_importance(raw)
    for i, expected in enumerate(authors_weights):
        np.testing.assert_allclose(weights[f"tap_{i}"], expected, rtol=1e-9)
    want = oracles.reg_att_fea_map(source_nchw, target_nchw, authors_weights)
    got = value(DELTA(relative=False, alpha=0.01, channel_weights=weights)(target, source))
    assert got == pytest.approx(0.01 * want, rel=1e-5)
    got_mean = value(DELTA(relative=False, alpha=0.01, channel_weights=weights, reduction="mean")(target, source))
    assert got_mean == pytest.approx(0.01 * want / batch, rel=1e-5)


def test_delta_layer_balance_is_the_authors():
    # One 56x56 and one 7x7 tap with the same per-position distance: the authors' code weighs them
    # equally (mean over positions); a sum over positions would make the first 64x heavier.
    target = {"a": np.ones((2, 56, 56, 4), "float32"), "b": np.ones((2, 7, 7, 4), "float32")}
    source = {name: np.zeros_like(m) for name, m in target.items()}
    uniform = {"a": [1.0] * 4, "b": [1.0] * 4}
    one_tap = {
        n: value(DELTA(relative=False, alpha=1.0, channel_weights={n: uniform[n]})({n: target[n]}, {n: source[n]}))
        for n in "ab"
    }
    assert one_tap["a"] == pytest.approx(one_tap["b"], rel=1e-6)
    want = oracles.reg_att_fea_map(
        [np.transpose(source[n], (0, 3, 1, 2)) for n in "ab"],
        [np.transpose(target[n], (0, 3, 1, 2)) for n in "ab"],
        [np.full(4, 0.25)] * 2,
    )
    assert value(DELTA(relative=False, alpha=1.0, channel_weights=uniform)(target, source)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l2_sp_is_reg_l2sp_plus_reg_classifier(seed):
    rng = np.random.default_rng(seed)
    shapes = {"backbone/conv/kernel": (3, 3, 2, 4), "backbone/conv/bias": (4,), "backbone/bn/gamma": (4,)}
    source = {k: rng.normal(size=s).astype("float32") for k, s in shapes.items()}
    target = {k: (v + rng.normal(scale=0.1, size=v.shape)).astype("float32") for k, v in source.items()}
    target.update(
        {
            "head/dense/kernel": rng.normal(size=(4, 3)).astype("float32"),
            "head/dense/bias": rng.normal(size=3).astype("float32"),
        }
    )
    want = 0.01 * oracles.reg_l2sp(target, source) + 0.02 * oracles.reg_classifier(
        [target["head/dense/kernel"], target["head/dense/bias"]]
    )
    assert value(L2SP(alpha=0.01, beta=0.02)(target, source)) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("batch, dim, k", [(4, 16, 1), (16, 8, 1), (32, 64, 3), (8, 8, 2)])
def test_bss_is_batch_spectral_shrinkage(batch, dim, k):
    features = np.random.default_rng(batch + dim).normal(size=(batch, dim)).astype("float32")
    want = oracles.batch_spectral_shrinkage(features.astype("float64"), k)
    assert value(BSS(eta=0.001, k=k)(features)) == pytest.approx(0.001 * want, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize("batch, source_classes, target_classes", [(1, 5, 2), (7, 10, 3), (32, 20, 6)])
def test_co_tuning_is_co_tuning_loss(batch, source_classes, target_classes):
    rng = np.random.default_rng(batch)
    relationship = oracles.softmax(rng.normal(size=(target_classes, source_classes)))
    logits = rng.normal(scale=2.0, size=(batch, source_classes)).astype("float32")
    labels = rng.integers(0, target_classes, batch)
    want = oracles.co_tuning_loss(logits.astype("float64"), relationship, labels)
    assert value(CoTuning(lam=2.3, relationship=relationship)(logits, labels)) == pytest.approx(
        2.3 * want, rel=1e-5
    )


@pytest.mark.parametrize("num_classes", [2, 4])
def test_direct_relationship_is_the_official_one_with_its_logit_scale(num_classes):
    rng = np.random.default_rng(num_classes)
    labels = np.arange(40) % num_classes
    logits = rng.normal(scale=3.0, size=(40, 7))
    want = oracles.direct_relationship_learning(logits, labels)
    got = relationship_lib.category_relationship(logits, labels, num_classes, method="direct")
    np.testing.assert_allclose(got, want, rtol=1e-9)
    # Without the 0.884 scaling (logit_scale=1) the rows differ: the constant matters.
    plain = relationship_lib.category_relationship(
        logits, labels, num_classes, method="direct", logit_scale=1.0
    )
    assert np.max(np.abs(plain - want)) > 1e-3


@pytest.mark.parametrize("batch, classes, temperature", [(1, 4, 2.0), (8, 10, 2.0), (16, 6, 1.0)])
def test_lwf_is_knowledge_distillation_plus_the_source_entropy(batch, classes, temperature):
    rng = np.random.default_rng(batch)
    student = rng.normal(scale=2.0, size=(batch, classes)).astype("float32")
    teacher = rng.normal(scale=2.0, size=(batch, classes)).astype("float32")
    kl = oracles.knowledge_distillation_loss(
        student.astype("float64"), teacher.astype("float64"), temperature
    )
    # LwF's cross-entropy = tllib's KL + the (parameter-free) entropy of the recorded responses.
    recorded = oracles.softmax(teacher.astype("float64") / temperature)
    entropy = np.mean(-np.sum(recorded * np.log(recorded), axis=-1))
    got = value(LwF(lam=1.0, temperature=temperature)(student, teacher))
    assert got == pytest.approx(kl + entropy, rel=1e-5)
