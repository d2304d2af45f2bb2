import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.optimizers import FTP
from tests.conftest import BACKEND
from tests.optimizers import problems, reference

STEPS = 6


def torch_start(problem):
    return {n: reference.to_torch(v) for n, v in problem.start.items()}


def official(problem, steps, lr, momentum, nesterov, k=1.0, exclude_set=()):
    problem.reset()
    params, gammas = reference.sgdp(
        torch_start(problem), problem.torch_gradients, steps, lr, momentum, nesterov, k, exclude_set
    )
    return {n: reference.from_torch(v) for n, v in params.items()}, gammas


@pytest.mark.parametrize("nesterov", [True, False])
def test_steps_match_the_official_sgdp(nesterov):
    problem = problems.Quadratic(seed=0)
    optimizer = FTP(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=nesterov), exclude=("^head",))
    ours = problem.run(optimizer, STEPS)
    expected, gammas = official(problem, STEPS, 0.05, 0.9, nesterov, exclude_set={"head_kernel"})
    for name in problems.SHAPES:
        np.testing.assert_allclose(ours[name], expected[name], rtol=2e-5, atol=2e-6, err_msg=name)
    projected = [n for n in problems.SHAPES if n != "head_kernel"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(optimizer.gamma), [gammas[n] for n in projected], rtol=1e-4, atol=1e-9
    )
    # Not vacuous: γ left its initial 1e-8, and the projection changed the path of plain SGD.
    assert all(gammas[n] > 1e-4 for n in projected)
    plain, _ = official(problem, STEPS, 0.05, 0.9, nesterov, exclude_set=set(problems.SHAPES))
    assert min(np.abs(expected[n] - plain[n]).max() for n in projected) > 1e-3


def test_first_step_keeps_the_anchor_and_the_excluded_variable_moves():
    problem = problems.Quadratic(seed=1)
    ours = problem.run(FTP(keras.optimizers.SGD(0.1, momentum=0.9), exclude=("^head",)), 1)
    for name in ("dense_kernel", "conv_kernel", "bias"):
        np.testing.assert_allclose(ours[name], problem.start[name], atol=1e-6)
    step = 0.1 * problem.gradients(problem.start)["head_kernel"]
    np.testing.assert_allclose(ours["head_kernel"], problem.start["head_kernel"] - step, rtol=1e-6)


def test_k_anneals_positive_hypergradients_as_the_official_code():
    # The loss pulls back to the anchor from the 4th step: the hypergradient turns positive.
    problem = problems.Quadratic(seed=2, return_after=3)
    ours = problem.run(FTP(keras.optimizers.SGD(0.05, momentum=0.9), k=0.3), 8)
    expected, _ = official(problem, 8, 0.05, 0.9, False, k=0.3)
    unannealed, _ = official(problem, 8, 0.05, 0.9, False, k=1.0)
    for name in problems.SHAPES:
        np.testing.assert_allclose(ours[name], expected[name], rtol=2e-5, atol=2e-6, err_msg=name)
    assert max(np.abs(expected[n] - unannealed[n]).max() for n in problems.SHAPES) > 1e-4


def test_explicit_anchors():
    problem = problems.Quadratic(seed=4)
    anchors = {n: v + 0.3 for n, v in problem.start.items()}
    optimizer = FTP(keras.optimizers.SGD(0.05, momentum=0.9), anchors=anchors)
    ours = problem.run(optimizer, 1)
    # γ = 1e-8 at the first step: every variable lands on its explicit anchor.
    for name in problems.SHAPES:
        np.testing.assert_allclose(ours[name], anchors[name], atol=1e-6)


@pytest.mark.skipif(
    BACKEND != "jax", reason="stateless_apply is the JAX trainer's path; TF optimizers refuse it"
)
def test_stateless_apply_equals_apply():
    problem = problems.Quadratic(seed=5)
    stateful = problem.run(FTP(keras.optimizers.SGD(0.05, momentum=0.9)), 4)
    stateless_optimizer = FTP(keras.optimizers.SGD(0.05, momentum=0.9))
    stateless = problem.run(stateless_optimizer, 4, stateless=True)
    for name in problems.SHAPES:
        np.testing.assert_allclose(stateless[name], stateful[name], rtol=1e-6, atol=1e-7)
    assert int(keras.ops.convert_to_numpy(stateless_optimizer.iterations)) == 4


def test_fit_matches_the_official_update_on_a_regression():
    x, y = problems.regression_data()
    model = problems.regression_model()
    start = problems.regression_weights(model)
    model.compile(optimizer=FTP(keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)), loss="mse")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    data = problems.batches(x, y, 4) * 2

    def gradients(torch_values):
        step = gradients.calls
        gradients.calls += 1
        values = {n: reference.from_torch(v) for n, v in torch_values.items()}
        grads = problems.regression_gradients(*data[step], values)
        return {n: reference.to_torch(g) for n, g in grads.items()}

    gradients.calls = 0
    params, _ = reference.sgdp(
        {n: reference.to_torch(v) for n, v in start.items()}, gradients, len(data), 0.1, 0.9, True
    )
    ours = problems.regression_weights(model)
    for name, value in params.items():
        np.testing.assert_allclose(
            ours[name], reference.from_torch(value), rtol=1e-5, atol=1e-6, err_msg=name
        )


def test_config_round_trip():
    optimizer = FTP(
        keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.01, 100), momentum=0.9),
        k=0.5,
        gamma_learning_rate=0.02,
        exclude=("^head/",),
        name="ftp_x",
    )
    config = optimizer.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["k"] == 0.5 and config["exclude"] == ["^head/"] and config["name"] == "ftp_x"
    restored = keras.optimizers.deserialize(json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    assert type(restored) is FTP and restored.get_config() == config
    assert restored.inner_optimizer.get_config() == optimizer.inner_optimizer.get_config()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": -0.1}, ValueError, r"Expected k >= 0 \(a float\). Received: k=-0.1"),
        ({"k": 1.5}, ValueError, r"Expected 0 <= k <= 1 \(a float\). Received: k=1.5"),
        ({"gamma_learning_rate": 0}, ValueError, r"Expected gamma_learning_rate > 0 \(a float\). Received"),
        (
            {"exclude": "head"},
            ValueError,
            r"Expected exclude to be a list of regular expressions .* Received: exclude='head'",
        ),
        (
            {"exclude": ["("]},
            ValueError,
            r"Expected exclude to be a list of regular expressions \(missing \)",
        ),
        (
            {"anchors": [1.0]},
            ValueError,
            r"Expected anchors to be None or a dict .* Received: anchors=\[1.0\]",
        ),
        (
            {"weight_decay": 0.1},
            ValueError,
            r"Expected no base optimizer arguments on FTP: .* Received: weight_decay=0.1",
        ),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        FTP(keras.optimizers.SGD(0.1), **kwargs)


def test_invalid_inner_optimizers():
    with pytest.raises(
        TypeError, match=r"Expected inner_optimizer to be a keras.optimizers.Optimizer instance"
    ):
        FTP("sgd")
    with pytest.raises(ValueError, match=r"wrap the other way round, LossScaleOptimizer\(FTP\(...\)\)"):
        FTP(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    with pytest.raises(ValueError, match=r"Received: gradient_accumulation_steps=2"):
        FTP(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match=r"Received: use_ema=True"):
        FTP(keras.optimizers.SGD(0.1, use_ema=True))


def test_anchor_errors_name_every_variable():
    problem = problems.Quadratic()
    anchors = {n: v for n, v in problem.start.items() if n != "bias"}
    anchors["conv_kernel"] = anchors["conv_kernel"][..., :2]
    anchors["nope"] = np.zeros(3)
    with pytest.raises(
        ValueError, match=r"missing=\['bias'\], unknown=\['nope'\], shape mismatches=\['conv_kernel"
    ):
        FTP(keras.optimizers.SGD(0.1), anchors=anchors).build(problem.variables())
    # An excluded variable needs no anchor.
    FTP(
        keras.optimizers.SGD(0.1),
        anchors={n: v for n, v in problem.start.items() if n != "bias"},
        exclude=("bias",),
    ).build(problem.variables())


def test_exported():
    assert keras_tl.optimizers.FTP is FTP
    assert keras.saving.get_registered_object("keras_tl>FTP") is FTP
