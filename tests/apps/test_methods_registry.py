"""The fine-tuning methods registered in `keras_tl.methods`: built through the registry, one short fit each."""

import json
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl import methods
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source

BATCH = 4
CLASSES = 3
UPSTREAM = 10

# method -> (hparams for a fast run, the `reg/<name>` logs it must produce)
NEW_METHODS = {
    "knowdist": ({}, ["feature_map_distillation", "l2"]),
    "delta": ({"head_epochs": 1, "num_batches": 1}, ["delta", "l2"]),
    "l2_sp_att": ({"head_epochs": 1, "num_batches": 1}, ["l2_sp_attention"]),
    "afa": ({}, ["ast", "act", "l2"]),
    "spa_gca": ({}, ["spa", "gca", "l2"]),
    "co_tuning": ({"relationship": "direct"}, ["co_tuning", "l2"]),
    "di2": ({}, ["discrepant_diffusion", "l2"]),
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


def fit_once(setup, source, train):
    model = keras_tl.TransferModel(
        source,
        num_classes=train.num_classes,
        taps=TAPS,
        regularizers=setup.regularizers,
        freeze_backbone=setup.freeze_backbone,
        source_head=setup.source_head,
        keep_source=setup.keep_source,
    )
    compile_sgd(model, lr=0.01)
    steps = train.num_examples // BATCH
    recorder = BatchLogs()
    model.fit(train.dataset, epochs=1, callbacks=list(setup.callbacks(1, steps)) + [recorder], verbose=0)
    return model, recorder.batches


@pytest.mark.parametrize("method", sorted(NEW_METHODS))
def test_method_builds_and_fits(method, tmp_path):
    hparams, names = NEW_METHODS[method]
    source, train = tiny_source(classes=UPSTREAM), tiny_split()
    context = methods.Context(source, TAPS, train, str(tmp_path))
    setup = methods.build(method, {f"{method}.{key}": value for key, value in hparams.items()}, context)
    assert setup.prepare is None
    assert sorted(r.name for r in setup.regularizers) == sorted(names)
    model, batches = fit_once(setup, source, train)
    assert len(batches) == 3
    for name in names:
        values = [logs[f"reg/{name}"] for logs in batches if f"reg/{name}" in logs]
        assert values and np.all(np.isfinite(values)), (name, values)
    assert np.all(np.isfinite([logs["loss"] for logs in batches]))
    if method in ("delta", "l2_sp_att"):
        with open(os.path.join(tmp_path, "delta_channel_weights.json")) as f:
            assert sorted(json.load(f)) == sorted([*TAPS, "__examples__"])
    if method in ("afa", "spa_gca"):
        # The staged switch happened inside the one epoch: the second stage is active at the end.
        second = ["act", "l2"] if method == "afa" else ["gca", "l2"]
        assert sorted(r.name for r in model.active_regularizers) == second


def test_hparams_override_defaults():
    setup = methods.build("afa", {"alpha": 0.5, "afa.beta": 0.25, "lam": 7.0})
    ast, act, l2 = setup.regularizers
    assert (ast.alpha, act.alpha, l2.beta) == (0.5, 0.5, 0.25)
    (callback,) = setup.callbacks(10, 5)
    assert isinstance(callback, keras_tl.callbacks.StagedRegularization) and callback.switch_at == [0.5]
    assert not callback.sync_source
    (callback,) = methods.build("spa_gca", {"spa_gca.switch_at": 3}).callbacks(10, 5)
    assert callback.switch_at == [3] and callback.sync_source
    methods.check_hparams(["delta", "di2"], {"delta.head_epochs": 1, "lam": 0.01, "extra": 2})
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        methods.check_hparams(["knowdist"], {"lam": 1.0})


def test_data_dependent_method_needs_context():
    with pytest.raises(ValueError, match="Expected a methods.Context"):
        methods.build("co_tuning", {})


def test_di2_sequences_follow_class_means(tmp_path):
    source, train = tiny_source(classes=UPSTREAM), tiny_split()
    setup = methods.build("di2", {"extra": 1}, methods.Context(source, TAPS, train, None))
    logits, labels = methods._upstream_logits(methods.Context(source, TAPS, train))
    scores = keras_tl.relationship.class_means(logits, labels, CLASSES)
    expected, k = keras_tl.diffusion.granularity_sequences(scores, extra=1)
    (diffusion,) = [r for r in setup.regularizers if r.name == "discrepant_diffusion"]
    assert [list(row) for row in diffusion.sequences] == expected and len(expected[0]) == k
    assert sorted(labels.tolist()) == sorted(tiny_data(n=12, classes=CLASSES)[1].tolist())
