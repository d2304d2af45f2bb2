"""The built-in methods of `keras_tl.methods`: each prepared and fitted once through its own unit."""

import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import methods
from keras_tl.methods.output_level import training_upstream_logits
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source

BATCH = 4
CLASSES = 3
UPSTREAM = 10

# method -> (hparams for a fast run, the `reg/<name>` logs it must produce)
DATA_DEPENDENT = {
    "knowdist": ({}, ["feature_map_distillation", "l2"]),
    "delta": ({"head_epochs": 1, "num_batches": 1}, ["delta", "l2"]),
    "l2_sp_att": ({"head_epochs": 1, "num_batches": 1}, ["l2_sp_attention"]),
    "afa": ({}, ["ast", "act", "l2"]),
    "spa_gca": ({}, ["spa", "gca", "l2"]),
    "co_tuning": ({"relationship": "direct"}, ["co_tuning", "l2"]),
    "di2": ({}, ["discrepant_diffusion", "l2"]),
    "dsd": ({}, ["discrepant_diffusion", "l2"]),
}


def tiny_split(n=12):
    x, y = tiny_data(n=n, classes=CLASSES)
    # One pattern per class, so the classes' mean upstream rankings differ (DI2 needs that).
    patterns = np.random.default_rng(2).uniform(-2, 2, (CLASSES,) + x.shape[1:]).astype("float32")
    x = 0.2 * x + patterns[y]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=0).batch(BATCH, drop_remainder=True)
    return types.SimpleNamespace(dataset=dataset, num_classes=CLASSES, num_examples=n)


class BatchLogs(keras.callbacks.Callback):
    """Every training batch's logs: a staged method's first-stage terms leave the epoch logs at the switch."""

    def on_train_begin(self, logs=None):
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append({key: float(value) for key, value in (logs or {}).items()})


@pytest.mark.parametrize("name", sorted(DATA_DEPENDENT))
def test_method_prepares_builds_and_fits(name, tmp_path):
    hparams, logged = DATA_DEPENDENT[name]
    source, train = tiny_source(classes=UPSTREAM), tiny_split()
    method = methods.get(name, **hparams)
    setup = method.setup(source, train, TAPS, str(tmp_path))
    assert sorted(r.name for r in setup.regularizers) == sorted(logged)
    model = compile_sgd(method.build(source, train, taps=TAPS, setup=setup), lr=0.01)
    recorder = BatchLogs()
    steps = train.num_examples // BATCH
    model.fit(train.dataset, epochs=1, callbacks=method.callbacks(1, steps) + [recorder], verbose=0)
    assert len(recorder.batches) == 3
    for term in logged:
        values = [logs[f"reg/{term}"] for logs in recorder.batches if f"reg/{term}" in logs]
        assert values and np.all(np.isfinite(values)), (term, values)
    assert np.all(np.isfinite([logs["loss"] for logs in recorder.batches]))
    if name in ("delta", "l2_sp_att"):
        with open(os.path.join(tmp_path, "delta_channel_weights.json")) as f:
            assert sorted(json.load(f)) == sorted([*TAPS, "__examples__"])
    if name in ("afa", "spa_gca"):
        # The staged switch happened inside the one epoch: the second stage is active at the end.
        second = ["act", "l2"] if name == "afa" else ["gca", "l2"]
        assert sorted(r.name for r in model.objective.active) == second


def test_hparams_override_defaults_and_shape_the_callbacks():
    ast, act, l2 = methods.get("afa", alpha=0.5, beta=0.25).setup().regularizers
    assert (ast.alpha, act.alpha, l2.beta) == (0.5, 0.5, 0.25)
    (callback,) = methods.get("afa").callbacks(10, 5)
    assert isinstance(callback, keras_tl.callbacks.StagedRegularization) and callback.switch_at == [0.5]
    assert not callback.sync_source
    (callback,) = methods.get("spa_gca", switch_at=3).callbacks(10, 5)
    assert callback.switch_at == [3] and callback.sync_source
    assert methods.get("l2_sp").callbacks(10, 5) == []


def test_a_data_dependent_method_without_training_data_says_so():
    with pytest.raises(ValueError, match=r"Expected the training data for method 'co_tuning'.*Received: train=None"):
        methods.get("co_tuning").setup()


def test_di2_sequences_follow_class_means():
    source, train = tiny_source(classes=UPSTREAM), tiny_split()
    method = methods.get("di2", extra=1)
    setup = method.setup(source, train, TAPS)
    logits, labels = training_upstream_logits(method, methods.Context(source, TAPS, train))
    scores = keras_tl.relationship.class_means(logits, labels, CLASSES)
    expected, k = keras_tl.diffusion.granularity_sequences(scores, extra=1)
    (diffusion,) = [r for r in setup.regularizers if r.name == "discrepant_diffusion"]
    assert [list(row) for row in diffusion.sequences] == expected and len(expected[0]) == k
    assert sorted(labels.tolist()) == sorted(tiny_data(n=12, classes=CLASSES)[1].tolist())


def test_dsd_is_di2_from_a_pgd_source():
    assert issubclass(methods.DSD, methods.DI2) and methods.DSD.defaults() == methods.DI2.defaults()
    assert (methods.DSD.upstream, methods.DI2.upstream) == ("pgd", "cross_entropy")
    assert methods.DSD.grid_from == "di2"
    assert methods.DSD.claims == (methods.Claim("co_tuning"), methods.Claim("l2", datasets=("tin-b", "tin-b5", "tin-b25")))


def test_a_preparation_reads_the_same_pass_whatever_trained_on_the_split_before():
    # A split's augmentation is keyed by its pass counter, which every fit moves on, and
    # `keras_tl.select`'s candidates share one split: Co-Tuning's relationship must not depend on it.
    train = keras_tl.data.load(
        "digits", "train", image_size=8, preprocess="cifar_resnet8", batch_size=4, augment="keras",
        classes=["0", "1", "2"], per_class=4, training=True,
    )
    source, method = tiny_source(classes=UPSTREAM), methods.get("co_tuning")

    def relationship():
        (term,) = [r for r in method.setup(source, train, TAPS).regularizers if r.name == "co_tuning"]
        return keras.ops.convert_to_numpy(term.relationship)

    first = relationship()
    train.epoch.assign(7)  # as after a 7-epoch fit on the split: pass 7 holds other views
    logits, labels = training_upstream_logits(method, methods.Context(source, TAPS, train))
    other = keras_tl.relationship.category_relationship(logits, labels, 3, method="reverse", C=1.0)
    assert np.abs(np.asarray(other) - first).max() > 1e-3
    train.epoch.assign(7)
    np.testing.assert_array_equal(relationship(), first)
