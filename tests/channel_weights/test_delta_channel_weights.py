import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.channel_weights import (
    channel_importance,
    channel_importance_loop,
    delta_channel_weights,
    normalize_importance,
)
from keras_tl.channel_weights.ablation import AblationPlan, _example_bytes
from tests.conftest import TAPS, tiny_data, tiny_source

CHANNELS = (16, 32, 64)


def l2_fe(source, taps):
    """An L2-FE model whose logits are O(1), so loss increases are O(0.1) and float32 noise O(1e-7)."""
    model = keras_tl.TransferModel(source, 3, taps=taps, freeze_backbone=True)
    kernel = keras.ops.convert_to_numpy(model.head.kernel)
    model.head.kernel.assign(0.05 * kernel)
    model.head.bias.assign(np.array([0.1, -0.2, 0.05], "float32"))
    return model


def batches(n=12, batch_size=6, input_shape=(8, 8, 3)):
    x, y = tiny_data(n, input_shape=input_shape)
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]


def pooled_head_source():
    """A small source whose last tap feeds global average pooling and the head directly."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 6, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="first_conv")(inputs)
    x = keras.layers.Activation("relu", name="first_relu")(x)
    x = keras.layers.Conv2D(7, 3, name="last_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x))


def test_batched_equals_the_per_channel_loop():
    model = l2_fe(tiny_source(), TAPS)
    data = batches()
    # chunk_size=5 divides none of 16/32/64: the padded last chunk is exercised on every tap.
    batched, stats = channel_importance(model, data, chunk_size=5, return_stats=True)
    loop, loop_stats = channel_importance_loop(model, data, return_stats=True)
    assert sorted(batched) == sorted(loop) == sorted(TAPS)
    for name, channels in zip(TAPS, CHANNELS, strict=True):
        assert len(batched[name]) == channels
        np.testing.assert_allclose(batched[name], loop[name], atol=1e-5, err_msg=name)
    assert max(abs(v) for values in loop.values() for v in values) > 1e-3  # not trivially zero
    # Per batch: 1 prefix pass + ceil(C / 5) suffix passes per tap, versus 1 + ΣC full passes.
    counts = {name: stats["taps"][name]["passes"] for name in TAPS}
    assert counts == dict(zip(TAPS, [2 * 4, 2 * 7, 2 * 13], strict=True))
    assert stats["forward_passes"] == 2 * (1 + 4 + 7 + 13) and stats["examples"] == 12
    assert stats["prefix_passes"] == 2 and stats["suffix_passes"] == 2 * (4 + 7 + 13) and stats["seconds"] > 0
    assert loop_stats == {"forward_passes": 2 * (1 + sum(CHANNELS)), "examples": 12}


def test_max_pass_mb_bounds_the_copies_and_keeps_the_result(caplog):
    model = l2_fe(tiny_source(), TAPS)
    data = batches()  # batches of 6
    reference = channel_importance(model, data, chunk_size=5)
    # The suffix inputs of one example are at most 8·8·16 floats per tap here (4 KB with the
    # shortcut); a budget of 12 copies of the largest gives 12 // 6 = 2 channels per pass or more.
    plan = AblationPlan(model, TAPS)
    outputs = plan.prefix.predict_on_batch(data[0][0])
    sizes = {tap.name: _example_bytes(tap, outputs) for tap in plan.taps}
    budget_mb = 12 * max(sizes.values()) / 2**20
    with caplog.at_level("INFO", logger="keras_tl.channel_weights.ablation"):
        bounded, stats = channel_importance(
            model, data, chunk_size=5, max_pass_mb=budget_mb, return_stats=True, verbose=1
        )
    for name in TAPS:
        np.testing.assert_allclose(bounded[name], reference[name], atol=1e-5, err_msg=name)
    counts = [min(5, int(budget_mb * 2**20 // (6 * sizes[name]))) for name in TAPS]
    assert min(counts) == 2  # the bound binds on the largest inputs
    per_batch = sum(-(-channels // count) for channels, count in zip(CHANNELS, counts, strict=True))
    assert stats["suffix_passes"] == 2 * per_batch
    assert f"{2 + 2 * per_batch} forward passes (2 prefix + {2 * per_batch} suffix)" in caplog.text
    with pytest.raises(
        ValueError,
        match=r"Expected max_pass_mb to be a positive number or None. Received: max_pass_mb=0",
    ):
        channel_importance(model, data, max_pass_mb=0)


def test_closed_form_equals_the_loop_on_the_last_tap():
    model = l2_fe(pooled_head_source(), ["first_conv", "last_conv"])
    modes = {tap.name: tap.mode for tap in AblationPlan(model, model.taps).taps}
    assert modes == {"first_conv": "suffix", "last_conv": "closed_form"}
    x = np.random.default_rng(0).normal(size=(10, 6, 6, 3)).astype("float32")
    data = [(x, np.arange(10) % 3)]
    batched, stats = channel_importance(model, data, return_stats=True)
    loop = channel_importance_loop(model, data)
    np.testing.assert_allclose(batched["last_conv"], loop["last_conv"], atol=1e-5)
    np.testing.assert_allclose(batched["first_conv"], loop["first_conv"], atol=1e-5)
    assert max(abs(v) for v in loop["last_conv"]) > 1e-3
    assert stats["forward_passes"] == 2  # the prefix, one suffix chunk for first_conv, none for last_conv


def test_loop_needs_filter_weights_and_restores_them():
    model = l2_fe(pooled_head_source(), ["first_relu"])
    with pytest.raises(ValueError, match=r"Received: tap 'first_relu' \(Activation\)"):
        channel_importance_loop(model, [(np.zeros((2, 6, 6, 3), "float32"), np.zeros(2, "int32"))])
    model = l2_fe(pooled_head_source(), ["last_conv"])
    before = [keras.ops.convert_to_numpy(v) for v in model.target_backbone.weights]
    channel_importance_loop(model, [(np.ones((2, 6, 6, 3), "float32"), np.zeros(2, "int32"))])
    for old, new in zip(before, model.target_backbone.weights, strict=True):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))


def test_normalizations_match_numpy():
    raw = {"a": [0.01, 0.03, -0.02, 0.0], "flat": [0.2, 0.2, 0.2]}
    soft = normalize_importance(raw, "mean_softmax")
    scores = np.exp(np.asarray(raw["a"]))
    np.testing.assert_allclose(soft["a"], scores / scores.sum(), rtol=1e-12)
    # Alg. 1 as printed: the softmax of the sum over the n examples, nearly one-hot for large n.
    summed = normalize_importance(raw, "sum_softmax", num_examples=256)
    scores = np.exp(256 * np.asarray(raw["a"]) - 256 * max(raw["a"]))
    np.testing.assert_allclose(summed["a"], scores / scores.sum(), rtol=1e-12)
    assert max(summed["a"]) > 0.99 and max(soft["a"]) < 0.26
    with pytest.raises(ValueError, match=r"Expected num_examples .* Received: num_examples=None"):
        normalize_importance(raw, "sum_softmax")
    with pytest.raises(
        ValueError, match=r"'softmax' was the softmax of the mean increase, now 'mean_softmax'"
    ):
        normalize_importance(raw, "softmax")
    zsoft = normalize_importance(raw, "zscore_softmax", temperature=5.0)
    z = (np.asarray(raw["a"]) - np.mean(raw["a"])) / np.std(raw["a"])
    np.testing.assert_allclose(zsoft["a"], np.exp(z / 5) / np.exp(z / 5).sum(), rtol=1e-12)
    np.testing.assert_allclose(zsoft["flat"], [1 / 3] * 3, rtol=1e-12)
    assert normalize_importance(raw) == zsoft  # the documented default
    with pytest.raises(
        ValueError, match=r"Expected normalization to be one of .* Received: normalization='l1'"
    ):
        normalize_importance(raw, "l1")
    with pytest.raises(ValueError, match=r"Expected temperature > 0 \(a float\). Received: temperature=0"):
        normalize_importance(raw, temperature=0)


def test_end_to_end_with_l2_fe_training_and_cache(tmp_path):
    x, y = tiny_data(16)
    path = tmp_path / "cache" / "delta.json"
    weights = delta_channel_weights(
        tiny_source(), 3, x, y, taps=TAPS, cache_path=str(path), head_epochs=1, batch_size=8, num_batches=2
    )
    assert sorted(weights) == sorted(TAPS)
    for name, channels in zip(TAPS, CHANNELS, strict=True):
        assert len(weights[name]) == channels and sum(weights[name]) == pytest.approx(1.0)
        assert min(weights[name]) > 0
    cached = json.loads(path.read_text())
    assert sorted(cached) == sorted([*TAPS, "__examples__"]) and cached.pop("__examples__") == 16
    assert normalize_importance(cached) == weights
    # A rerun reads the cache: no data, no head training, no ablation.
    assert delta_channel_weights(tiny_source(), 3, taps=TAPS, cache_path=str(path)) == weights
    softmax_weights = delta_channel_weights(
        tiny_source(), 3, taps=TAPS, cache_path=str(path), normalization="sum_softmax"
    )
    assert softmax_weights == normalize_importance(cached, "sum_softmax", num_examples=16)
    # The weights plug into DELTA as they are.
    keras_tl.regularizers.DELTA(relative=False, alpha=0.01, channel_weights=weights)


def test_a_trained_transfer_model_is_used_as_the_l2_fe_model():
    model = l2_fe(tiny_source(), TAPS)
    data = batches()
    weights = delta_channel_weights(model, x=data, num_batches=2, normalization="mean_softmax")
    assert weights == normalize_importance(channel_importance(model, data), "mean_softmax")
    with pytest.raises(ValueError, match=r"Expected target training data `x`"):
        delta_channel_weights(model)
