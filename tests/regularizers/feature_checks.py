"""Shared checks of the feature-map regularizers: numpy helpers and gradients through a TransferModel."""

import keras
import numpy as np

import keras_tl
from tests.conftest import BACKEND, TAPS, tiny_data, tiny_source

# Two taps of different, non-square resolutions: the attention layers must follow the maps.
SHAPES = {"b_tap": (3, 2, 2, 6), "a_tap": (3, 4, 3, 5)}


def random_maps(seed, shapes=SHAPES, scale=1.0):
    rng = np.random.default_rng(seed)
    return {name: (scale * rng.normal(size=shape)).astype("float32") for name, shape in shapes.items()}


def softmax(scores, axis=-1):
    scores = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return scores / scores.sum(axis=axis, keepdims=True)


def relu(x):
    return np.maximum(x, 0.0)


def randomize(variables, seed):
    """Assigns random values to `variables` (attention weights "given" to a test) and returns them."""
    rng = np.random.default_rng(seed)
    values = []
    for variable in variables:
        value = rng.normal(scale=0.5, size=tuple(variable.shape)).astype("float32")
        variable.assign(value)
        values.append(value)
    return values


def model_with(reg, **kwargs):
    return keras_tl.TransferModel(tiny_source(), 3, taps=TAPS, regularizers=[reg], **kwargs)


def regularizer_gradient_norms(model):
    """‖∂ΣΩ/∂(target backbone)‖ and ‖∂ΣΩ/∂(source backbone)‖ through the model's own step values.

    The source variables are differentiated explicitly (they are not trainable), so a
    missing stop-gradient on the source forward pass would show as a non-zero norm.
    """
    x, y = tiny_data()
    target_vars = model.target_backbone.trainable_variables
    source_vars = model.source_backbone.weights

    def terms():
        values = model.objective.step_values(x, y, training=False)
        return sum(model.objective.terms(values).values())

    if BACKEND == "jax":
        import jax

        def total(target_values, source_values):
            mapping = list(zip(target_vars, target_values, strict=True)) + list(
                zip(source_vars, source_values, strict=True)
            )
            with keras.StatelessScope(state_mapping=mapping):
                return terms()

        grads = jax.grad(total, argnums=(0, 1))(
            [v.value for v in target_vars], [v.value for v in source_vars]
        )
    else:
        import tensorflow as tf

        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in target_vars + source_vars])
            value = terms()
        grads = tape.gradient(value, ([v.value for v in target_vars], [v.value for v in source_vars]))

    def norm(gradients):
        return float(
            np.sqrt(sum(np.sum(np.square(keras.ops.convert_to_numpy(g))) for g in gradients if g is not None))
        )

    return norm(grads[0]), norm(grads[1])


def perturb_target(model, seed=3, scale=0.05):
    """Moves the target backbone off the source so that feature-map terms are non-zero."""
    rng = np.random.default_rng(seed)
    for variable in model.target_backbone.trainable_variables:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(value + rng.normal(scale=scale, size=value.shape).astype(value.dtype))
    return model


# ---------------------------------------------------------------- numpy references of the attention terms


def spatial_attention_numpy(feature_map, k1, k2, b2):
    """AST / SPA: softmax over positions of FC·ReLU·FC on the channel average, `[B, H·W]`."""
    batch, height, width, _ = feature_map.shape
    pooled = feature_map.mean(axis=-1).reshape(batch, height * width)
    return softmax(relu(pooled @ k1) @ k2 + b2)


def channel_attention_numpy(feature_map, k1, k2, bias):
    """ACT: softmax over channels of FC·ReLU·FC on each flattened channel, plus a bias, `[B, C]`."""
    batch, height, width, channels = feature_map.shape
    flat = feature_map.transpose(0, 3, 1, 2).reshape(batch, channels, height * width)
    return softmax((relu(flat @ k1) @ k2)[..., 0] + bias)


def position_term_numpy(target, source, attention):
    """½ · mean_b Σ_p (H·W·a_p)² ‖FM_t[p] − FM_s[p]‖²."""
    batch, height, width, _ = target.shape
    distances = np.sum((target - source) ** 2, axis=-1).reshape(batch, height * width)
    return 0.5 * np.sum((height * width * attention) ** 2 * distances) / batch


def channel_term_numpy(target, source, attention, scale):
    """½ · mean_b Σ_c scale·a_c ‖FM_t[c] − FM_s[c]‖²."""
    distances = np.sum((target - source) ** 2, axis=(1, 2))
    return 0.5 * np.sum(scale * attention * distances) / target.shape[0]


def attention_values(reg):
    return [keras.ops.convert_to_numpy(v) for v in reg.trainable_weights]


def check_source_untouched_and_attention_trained(reg):
    """Through a TransferModel: no gradient reaches the source, and `fit` trains the attention layers."""
    from tests.conftest import compile_sgd

    model = perturb_target(model_with(reg))
    target_norm, source_norm = regularizer_gradient_norms(model)
    assert target_norm > 1e-3 and source_norm == 0.0
    before = attention_values(reg)
    assert before, "expected trainable attention weights"
    x, y = tiny_data()
    compile_sgd(model, lr=1e-3).fit(x, y, batch_size=4, epochs=1, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, attention_values(reg), strict=True)]
    assert any(changed)


def check_reinitialize(reg):
    before = attention_values(reg)
    reg.reinitialize()
    after = attention_values(reg)
    for old, new, variable in zip(before, after, reg.trainable_weights, strict=True):
        if "bias" in variable.path:
            np.testing.assert_array_equal(new, 0.0)
        else:
            assert not np.array_equal(old, new), variable.path
    reg.reinitialize()  # each call is a new draw, not a replay of the first one
    for first, second, variable in zip(after, attention_values(reg), reg.trainable_weights, strict=True):
        if "bias" not in variable.path:
            assert not np.array_equal(first, second), variable.path
