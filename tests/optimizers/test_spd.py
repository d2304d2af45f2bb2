import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.optimizers import SPD
from tests.conftest import BACKEND
from tests.optimizers import problems, reference

STEPS = 8
# Keras' Adam adds epsilon to √v, PyTorch's to √v̂: with a negligible epsilon both are the same step.
EPSILON = 1e-12


def test_adam_steps_match_the_official_adam_spd():
    # The loss pulls back to the anchor from the 5th step while Adam's momentum still moves away.
    problem = problems.Quadratic(seed=0, return_after=4)
    ours = problem.run(SPD(keras.optimizers.Adam(0.1, epsilon=EPSILON), strength=0.7), STEPS)
    problem.reset()
    expected, decays = reference.adam_spd(
        problem.start, problem.gradients, STEPS, lr=0.1, weight_decay=0.7, eps=EPSILON
    )
    for name in problems.SHAPES:
        # Adam's float32 steps m/√v are sensitive where the gradient is near 0.
        np.testing.assert_allclose(ours[name], expected[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # Not vacuous: the decay branch ran on some steps and not on others.
    assert 0 < decays < STEPS * len(problems.SHAPES)


def test_sgd_momentum_steps_match_the_official_rule():
    problem = problems.Quadratic(seed=1)
    ours = problem.run(SPD(keras.optimizers.SGD(0.3, momentum=0.9), strength=1.0), STEPS)
    problem.reset()
    expected, decays = reference.sgd_spd(problem.start, problem.gradients, STEPS, lr=0.3, weight_decay=1.0)
    for name in problems.SHAPES:
        np.testing.assert_allclose(ours[name], expected[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert 0 < decays < STEPS * len(problems.SHAPES)


def test_strength_one_keeps_the_deviation_norm_where_it_decays():
    gradient = np.array([1.0, 0.0], "float32")  # ⟨g, θ − θ0⟩ > 0: the condition holds
    anchor = np.zeros(2, "float32")
    previous = np.array([1.0, 0.0], "float32")
    proposed = np.array([1.5, 1.0], "float32")  # the inner step grew the deviation
    value, decayed = keras_tl.optimizers.spd_step(gradient, previous, proposed, anchor, 1.0)
    assert bool(keras.ops.convert_to_numpy(decayed))
    np.testing.assert_allclose(np.linalg.norm(keras.ops.convert_to_numpy(value)), 1.0, rtol=1e-6)
    kept, decayed = keras_tl.optimizers.spd_step(-gradient, previous, proposed, anchor, 1.0)
    assert not bool(keras.ops.convert_to_numpy(decayed))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kept), proposed)
    # θ̃ = θ0: the official 0/0 ratio is 0 here.
    same, _ = keras_tl.optimizers.spd_step(gradient, previous, anchor, anchor, 1.0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(same), anchor)


def test_excluded_variables_take_the_inner_step():
    problem = problems.Quadratic(seed=1)
    ours = problem.run(SPD(keras.optimizers.SGD(0.3, momentum=0.9), exclude=("head",)), STEPS)
    plain = problem.run(keras.optimizers.SGD(0.3, momentum=0.9), STEPS)
    np.testing.assert_allclose(ours["head_kernel"], plain["head_kernel"], rtol=1e-6)
    assert np.abs(ours["bias"] - plain["bias"]).max() > 1e-3


@pytest.mark.skipif(
    BACKEND != "jax", reason="stateless_apply is the JAX trainer's path; TF optimizers refuse it"
)
def test_stateless_apply_equals_apply():
    problem = problems.Quadratic(seed=5)
    stateful = problem.run(SPD(keras.optimizers.SGD(0.3, momentum=0.9)), 5)
    stateless = problem.run(SPD(keras.optimizers.SGD(0.3, momentum=0.9)), 5, stateless=True)
    for name in problems.SHAPES:
        np.testing.assert_allclose(stateless[name], stateful[name], rtol=1e-6, atol=1e-7)


def test_fit_matches_the_official_rule_on_a_regression():
    x, y = problems.regression_data()
    model = problems.regression_model()
    start = problems.regression_weights(model)
    model.compile(optimizer=SPD(keras.optimizers.SGD(0.2, momentum=0.9)), loss="mse")
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    data = problems.batches(x, y, 4) * 3
    calls = iter(range(len(data)))
    expected, decays = reference.sgd_spd(
        start, lambda values: problems.regression_gradients(*data[next(calls)], values), len(data), 0.2, 1.0
    )
    ours = problems.regression_weights(model)
    for name, value in expected.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert decays > 0


def test_config_round_trip():
    optimizer = SPD(keras.optimizers.Adam(1e-3), strength=0.5, exclude=("^head/",))
    config = optimizer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["strength"] == 0.5 and config["exclude"] == ["^head/"]
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is SPD and restored.get_config() == config
    assert type(restored.inner_optimizer) is keras.optimizers.Adam


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strength": -1}, r"Expected strength >= 0 \(a float\). Received: strength=-1"),
        ({"strength": "1"}, r"Expected strength >= 0 \(a float\). Received: strength='1'"),
        ({"exclude": ("head", 3)}, r"Expected exclude to be a list of regular expressions"),
        ({"anchors": np.zeros(3)}, r"Expected anchors to be None or a dict"),
        ({"clipnorm": 1.0}, r"Expected no base optimizer arguments on SPD: .* Received: clipnorm=1.0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SPD(keras.optimizers.SGD(0.1), **kwargs)


def test_invalid_inner_optimizer():
    with pytest.raises(
        TypeError, match=r"Expected inner_optimizer to be a keras.optimizers.Optimizer instance"
    ):
        SPD(None)
    built = keras.optimizers.SGD(0.1)
    built.build([keras.Variable(np.zeros(2))])
    with pytest.raises(ValueError, match=r"Expected an inner optimizer that is not built yet"):
        SPD(built)
