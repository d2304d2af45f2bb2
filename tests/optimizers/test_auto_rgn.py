import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import AutoRGNScales
from keras_tl.optimizers import AutoRGN, auto_rgn_scales
from tests.optimizers import reference

LAYERS = (("fc1", 4, 5), ("fc2_bn", 5, 4), ("head", 4, 3))
# The official code leaves parameters named "bn" out of the RGN ranking and of training.
FROZEN = ("bn",)
LR = 0.05


def chain_model(seed=0):
    """Three linear `Dense` layers with non-zero biases (the official ‖θ‖ divides by them)."""
    rng = np.random.default_rng(seed)
    layers = [keras.layers.Dense(units, name=name) for name, _, units in LAYERS]
    model = keras.Sequential([keras.Input((LAYERS[0][1],)), *layers])
    for layer, (_, fan_in, units) in zip(layers, LAYERS, strict=True):
        layer.kernel.assign(rng.normal(0, 0.5, (fan_in, units)).astype("float32"))
        layer.bias.assign(rng.normal(0, 0.3, (units,)).astype("float32"))
    return model


def short(path):
    return "/".join(path.split("/")[-2:])  # "sequential_3/fc1/kernel" -> "fc1/kernel"


def weights(model):
    return {short(v.path): keras.ops.convert_to_numpy(v).astype("float64") for v in model.trainable_variables}


def cross_entropy_gradients(params, x, y):
    """∇ of the mean softmax cross-entropy of the linear chain, by hand (PyTorch's `F.cross_entropy`)."""
    activations = [x.astype("float64")]
    for name, _, _ in LAYERS:
        activations.append(activations[-1] @ params[f"{name}/kernel"] + params[f"{name}/bias"])
    logits = activations[-1]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    delta = (probabilities - np.eye(logits.shape[1])[y]) / len(x)
    grads = {}
    for index in range(len(LAYERS) - 1, -1, -1):
        name = LAYERS[index][0]
        grads[f"{name}/kernel"] = activations[index].T @ delta
        grads[f"{name}/bias"] = delta.sum(0)
        delta = delta @ params[f"{name}/kernel"].T
    return grads


def data(n=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, LAYERS[0][1])).astype("float32"), (np.arange(n) % 3).astype("int32")


def official_epochs(params, x, y, epochs, batch_size, num_batches, step):
    """The official loop: RGN weights from the first batches at each epoch's start, then the epoch's steps."""
    batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    ranked = [name for name in params if "bn" not in name]
    for _ in range(epochs):
        grads_per_batch = [cross_entropy_gradients(params, bx, by) for bx, by in batches[:num_batches]]
        lr_weights = reference.rgn_weights(params, grads_per_batch, ranked)
        state = {}  # a new optimizer each epoch
        for bx, by in batches:
            params = {**params, **step(params, cross_entropy_gradients(params, bx, by), lr_weights, state)}
    return params, lr_weights


def sgd_step(params, grads, lr_weights, state):
    return {name: params[name] - weight * LR * grads[name] for name, weight in lr_weights.items()}


def adam_step(params, grads, lr_weights, state):
    return reference.adam_groups(params, grads, {n: w * LR for n, w in lr_weights.items()}, state, eps=1e-12)


def fit(model, optimizer, x, y, epochs, num_batches=2):
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = AutoRGNScales((x, y), num_batches=num_batches, batch_size=4)
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=[callback])
    return callback


def test_two_sgd_epochs_match_the_official_loop():
    x, y = data()
    model = chain_model()
    start = weights(model)
    callback = fit(model, AutoRGN(keras.optimizers.SGD(LR), frozen=FROZEN), x, y, epochs=2)
    expected, lr_weights = official_epochs(start, x, y, 2, 4, 2, sgd_step)
    ours = weights(model)
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    # The second epoch's scales, the frozen variables' 0 included.
    assert {short(p): s for p, s in callback.scales.items()} == pytest.approx(
        {**{n: 0.0 for n in start if "bn" in n}, **lr_weights}, rel=1e-5
    )
    assert min(lr_weights.values()) < 0.5 and max(lr_weights.values()) == 1.0


def test_an_adam_epoch_matches_the_official_per_group_learning_rates():
    x, y = data(seed=2)
    model = chain_model(seed=3)
    start = weights(model)
    fit(model, AutoRGN(keras.optimizers.Adam(LR, epsilon=1e-12), frozen=FROZEN), x, y, epochs=1)
    expected, _ = official_epochs(start, x, y, 1, 4, 2, adam_step)
    ours = weights(model)
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(ours["fc2_bn/kernel"], start["fc2_bn/kernel"])


def test_scales_from_norms():
    gradient_norms = np.array([[1.0, 2.0, 3.0, 5.0], [3.0, 2.0, 1.0, 7.0]])
    weight_norms = np.array([2.0, 1.0, 0.5, 0.0])
    # RGN: mean(0.5, 1.5)=1, mean(2, 2)=2, mean(6, 2)=4; the zero-norm variable gets 1.
    np.testing.assert_allclose(auto_rgn_scales(gradient_norms, weight_norms), [0.25, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(auto_rgn_scales(np.zeros((1, 2)), np.ones(2)), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"Expected gradient_norms of shape \(batches >= 1, variables\)"):
        auto_rgn_scales(np.ones((0, 2)), np.ones(2))


def test_without_the_callback_it_is_the_inner_optimizer_with_frozen_variables():
    x, y = data()
    model, plain = chain_model(), chain_model()
    plain.get_layer("head").trainable = False
    model.compile(
        optimizer=AutoRGN(keras.optimizers.SGD(LR), frozen=("head",)), loss="sparse_categorical_crossentropy"
    )
    plain.compile(optimizer=keras.optimizers.SGD(LR), loss="sparse_categorical_crossentropy")
    for m in (model, plain):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    ours, expected, start = weights(model), weights(plain), weights(chain_model())
    np.testing.assert_allclose(ours["fc1/kernel"], expected["fc1/kernel"], rtol=1e-6)
    np.testing.assert_array_equal(ours["head/kernel"], start["head/kernel"])


def test_config_round_trip():
    optimizer = AutoRGN(keras.optimizers.Adam(1e-3), frozen=("_bn/",))
    config = optimizer.get_config()
    assert json.loads(json.dumps(config)) == config and config["frozen"] == ["_bn/"]
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is AutoRGN and restored.get_config() == config
    assert AutoRGNScales(data(), batch_size=4).get_config() == {"num_batches": 5, "batch_size": 4}


def test_invalid_arguments():
    with pytest.raises(
        ValueError, match=r"Expected frozen to be a list of regular expressions .* Received: frozen='bn'"
    ):
        AutoRGN(keras.optimizers.SGD(0.1), frozen="bn")
    with pytest.raises(ValueError, match=r"Expected no base optimizer arguments on AutoRGN"):
        AutoRGN(keras.optimizers.SGD(0.1), learning_rate=0.1)
    with pytest.raises(ValueError, match=r"Expected num_batches >= 1 \(an int\). Received: num_batches=0"):
        AutoRGNScales(data(), num_batches=0, batch_size=4)
    with pytest.raises(ValueError, match=r"Expected batch_size >= 1 \(an int\). Received: batch_size=None"):
        AutoRGNScales(data())
    with pytest.raises(ValueError, match=r"Expected batch_size only with a tuple of arrays"):
        AutoRGNScales([data()], batch_size=4)
    with pytest.raises(ValueError, match=r"Expected data to be a re-iterable of \(x, y\) batches"):
        AutoRGNScales(3)
    optimizer = AutoRGN(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"Expected a built AutoRGN"):
        optimizer.set_scales([], np.ones((1, 0)), np.ones(0))
    model = chain_model()
    optimizer.build(model.trainable_variables)
    with pytest.raises(ValueError, match=r"Expected exactly the variables the optimizer was built with"):
        optimizer.set_scales(model.trainable_variables[:2], np.ones((1, 2)), np.ones(2))


def test_a_dataset_of_batches_gives_the_same_scales_as_arrays():
    import tensorflow as tf

    x, y = data()
    scales = []
    for source in ((x, y), tf.data.Dataset.from_tensor_slices((x, y)).batch(4), problems_batches(x, y)):
        model = chain_model()
        model.compile(optimizer=AutoRGN(keras.optimizers.SGD(0.0)), loss="sparse_categorical_crossentropy")
        callback = AutoRGNScales(source, num_batches=2, batch_size=4 if isinstance(source, tuple) else None)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
        scales.append({short(p): s for p, s in callback.scales.items()})
    assert scales[1] == pytest.approx(scales[0], rel=1e-6) and scales[2] == pytest.approx(scales[0], rel=1e-6)
    model = chain_model()
    model.compile(optimizer=AutoRGN(keras.optimizers.SGD(0.0)), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"Expected data with at least one batch"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[AutoRGNScales([])])


def problems_batches(x, y):
    return [(x[i : i + 4], y[i : i + 4]) for i in range(0, len(x), 4)]


def test_callback_needs_an_auto_rgn():
    x, y = data()
    model = chain_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    with pytest.raises(
        ValueError, match=r"Expected the model to be compiled with a keras_tl.optimizers.AutoRGN"
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[AutoRGNScales((x, y), batch_size=4)])


def test_exported():
    assert keras_tl.optimizers.AutoRGN is AutoRGN and keras_tl.callbacks.AutoRGNScales is AutoRGNScales
