import keras
import numpy as np
import pytest

from keras_tl.regularizers import LwF
from tests.conftest import tiny_source, value_and_grad
from tests.regularizers.output_level import fit_save_reload

RNG = np.random.default_rng(4)
STUDENT = RNG.normal(size=(4, 5))
TEACHER = RNG.normal(size=(4, 5)) * 3


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_value_and_gradient_match_numpy(temperature):
    reg = LwF(lam=0.3, temperature=temperature)
    value, (grad, teacher_grad) = value_and_grad(lambda t: reg(t[0], t[1]), [STUDENT, TEACHER])
    recorded, current = softmax(TEACHER / temperature), softmax(STUDENT / temperature)
    assert value == pytest.approx(0.3 * np.mean(-np.sum(recorded * np.log(current), axis=1)), rel=1e-5)
    np.testing.assert_allclose(grad, 0.3 / (4 * temperature) * (current - recorded), rtol=1e-4, atol=1e-7)


def test_minimum_is_the_teachers_entropy_at_matching_outputs():
    reg = LwF(lam=1.0, temperature=2.0)
    value, (grad, _) = value_and_grad(lambda t: reg(t[0], t[1]), [TEACHER, TEACHER])
    recorded = softmax(TEACHER / 2.0)
    assert value == pytest.approx(np.mean(-np.sum(recorded * np.log(recorded), axis=1)), rel=1e-5)
    np.testing.assert_allclose(grad, 0.0, atol=1e-7)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"Expected lam >= 0 \(a float\). Received: lam=-1"):
        LwF(lam=-1)
    with pytest.raises(ValueError, match=r"Expected temperature > 0 \(a float\). Received: temperature=0"):
        LwF(temperature=0)


def test_needs_a_frozen_source_forward():
    reg = LwF()
    assert reg.requires_source_forward and reg.name == "lwf"


def test_config_round_trip():
    reg = LwF(lam=0.5, temperature=4.0)
    config = {"name": "lwf", "lam": 0.5, "temperature": 4.0}
    assert LwF.from_config(reg.get_config()).get_config() == config
    assert (
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg)).get_config() == config
    )


def test_fit_with_dtnh_and_save_load(tmp_path):
    _, model, _ = fit_save_reload(LwF(lam=1.0, temperature=2.0), tmp_path)
    # The distillation target is the frozen source, never trained.
    assert not model.frozen_source_head.trainable
    source = tiny_source()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.frozen_source_head.kernel),
        keras.ops.convert_to_numpy(source.get_layer("predictions").kernel),
    )
