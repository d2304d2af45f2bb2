"""`keras_tl.wise_ft` against a numpy restatement of mlfoundations/wise-ft `src/wise_ft.py`."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.interpolation import interpolate_weights
from keras_tl.utils.weights import named_variables
from tests.conftest import tiny_data, tiny_source


def state(part):
    """Every variable (trainable or not, like a PyTorch `state_dict`), as numpy."""
    return {k: np.array(keras.ops.convert_to_numpy(v)) for k, v in named_variables(part).items()}


def reference_wise_ft(theta_0, theta_1, alpha):
    """`src/wise_ft.py`: `{key: (1-alpha) * theta_0[key] + alpha * theta_1[key]}` after the key assertion."""
    assert set(theta_0.keys()) == set(theta_1.keys())
    return {key: (1 - alpha) * theta_0[key].astype("float64") + alpha * theta_1[key] for key in theta_0}


def fine_tuned(keep_source=True, seed=0):
    """A TransferModel whose every target variable (BatchNorm statistics included) moved away from the source."""
    keras.utils.set_random_seed(seed)
    model = keras_tl.TransferModel(tiny_source(), 3, keep_source=keep_source)
    rng = np.random.default_rng(seed)
    for variable in model.target_backbone.weights + model.head.weights:
        value = keras.ops.convert_to_numpy(variable)
        noise = rng.normal(0, 0.1, value.shape)
        variable.assign(
            (np.abs(value + noise) if "variance" in variable.name else value + noise).astype("float32")
        )
    return model


@pytest.mark.parametrize("keep_source", [True, False])
def test_interpolated_weights_match_reference_code(keep_source):
    model = fine_tuned(keep_source)
    before = state(model.target_backbone)
    head = [keras.ops.convert_to_numpy(v) for v in model.head.weights]
    source = None if keep_source else tiny_source()
    result, selection = keras_tl.wise_ft(model, alphas=0.3, source=source)

    # The source network's own layers and keys, without its upstream classifier (not in the backbone).
    want = reference_wise_ft(state(tiny_source(include_top=False)), before, 0.3)
    got = state(result.target_backbone)
    assert sorted(got) == sorted(want)
    assert any("moving_variance" in key for key in got)  # BatchNorm statistics are interpolated too
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)
    for variable, value in zip(result.head.weights, head, strict=True):  # no source counterpart: kept
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), value)
    assert result is not model
    for key, value in state(model.target_backbone).items():  # the given model is left as it was
        np.testing.assert_array_equal(value, before[key])
    assert selection == {"alpha": 0.3, "top1": None, "table": [{"alpha": 0.3, "top1": None}]}


def test_result_saves_and_loads(tmp_path):
    result, _ = keras_tl.wise_ft(fine_tuned(), alphas=0.5)
    result.save(tmp_path / "wise_ft.keras")
    loaded = keras.models.load_model(tmp_path / "wise_ft.keras", compile=False)
    for key, value in state(result.target_backbone).items():
        np.testing.assert_array_equal(state(loaded.target_backbone)[key], value)


def test_initial_head_is_interpolated_like_the_zero_shot_head():
    model = fine_tuned()
    head = [keras.ops.convert_to_numpy(v) for v in model.head.weights]
    rng = np.random.default_rng(5)
    initial = [rng.normal(size=w.shape).astype("float32") for w in head]
    result, _ = keras_tl.wise_ft(model, alphas=0.25, initial_head=initial, inplace=True)
    assert result is model
    for variable, start, end in zip(result.head.weights, initial, head, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), 0.75 * start + 0.25 * end, rtol=1e-6)


def top1(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def test_alpha_is_the_best_validation_top1_smallest_on_ties():
    model = fine_tuned(seed=1)
    x_val, y_val = tiny_data(n=12, seed=4)
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    source_state, finetuned_state = state(model.source_backbone), state(model.target_backbone)
    finetuned_head = [keras.ops.convert_to_numpy(v) for v in model.head.weights]

    # Independently: each α's weights from the reference formula, loaded into a fresh copy.
    want = []
    for alpha in alphas:
        copy = keras_tl.TransferModel(tiny_source(), 3)
        for key, variable in named_variables(copy.target_backbone).items():
            variable.assign(reference_wise_ft(source_state, finetuned_state, alpha)[key].astype("float32"))
        copy.head.set_weights(finetuned_head)
        want.append(top1(copy, x_val, y_val))
    best = max(want)
    chosen = alphas[want.index(best)]  # the first (smallest) α reaching the best top-1

    result, selection = keras_tl.wise_ft(model, alphas=alphas, validation_data=(x_val, y_val), batch_size=5)
    assert [row["alpha"] for row in selection["table"]] == alphas
    np.testing.assert_allclose([row["top1"] for row in selection["table"]], want)
    assert selection["alpha"] == chosen and selection["top1"] == best
    expected = reference_wise_ft(source_state, finetuned_state, chosen)
    for key, value in state(result.target_backbone).items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert top1(result, x_val, y_val) == best


def test_tie_goes_to_the_smaller_alpha():
    # Not fine-tuned: every α gives the source weights, so every α ties; the order of `alphas` must not decide.
    model = keras_tl.TransferModel(tiny_source(), 3, keep_source=True)
    x_val, y_val = tiny_data(n=6, seed=4)
    _, selection = keras_tl.wise_ft(model, alphas=[0.6, 1.0, 0.2, 0.4], validation_data=(x_val, y_val))
    assert len({row["top1"] for row in selection["table"]}) == 1
    assert selection["alpha"] == 0.2


def test_interpolate_weights_is_strict():
    with pytest.raises(ValueError, match=r"only in source: \['b'\]; only in finetuned: \[\]"):
        interpolate_weights({"a": 1.0, "b": 2.0}, {"a": 3.0}, 0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"alphas": 1.5},
            r"Expected alphas in \[0, 1\] \(a float or a sequence of them\). Received: alphas=\[1.5\]",
        ),
        ({"alphas": [0.1, 0.9]}, r"Expected validation_data to choose alpha among 2 values"),
        (
            {"initial_head": (np.zeros((2, 3)), np.zeros(3))},
            r"Expected initial_head = \(kernel \(64, 3\), bias",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_tl.wise_ft(fine_tuned(), **{"alphas": 0.5, **kwargs})


def test_needs_source_weights():
    with pytest.raises(
        ValueError, match=r"Expected the source weights: a TransferModel with a frozen source copy"
    ):
        keras_tl.wise_ft(fine_tuned(keep_source=False), alphas=0.5)


def test_source_must_match_the_backbone():
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv1_conv")(inputs))
    with pytest.raises(ValueError, match=r"(?s)do not match.*Missing in source .*Shape mismatches \(1\)"):
        keras_tl.wise_ft(fine_tuned(keep_source=False), alphas=0.5, source=other)
