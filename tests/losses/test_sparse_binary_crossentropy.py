import keras
import numpy as np
import pytest

from keras_tl.losses import SparseBinaryCrossentropy
from tests.conftest import value_and_grad

LOGITS = np.random.default_rng(7).normal(size=(4, 3)) * 3
LABELS = np.array([2, 0, 1, 1])


@pytest.mark.parametrize("labels", [LABELS, LABELS[:, None], np.eye(3)[LABELS]])
def test_eq6_value_and_gradient(labels):
    value, (grad,) = value_and_grad(lambda t: SparseBinaryCrossentropy()(labels, t[0]), [LOGITS])
    y, h = np.eye(3)[LABELS], 1 / (1 + np.exp(-LOGITS))
    assert value == pytest.approx(np.mean(-np.sum(y * np.log(h) + (1 - y) * np.log(1 - h), axis=1)), rel=1e-5)
    np.testing.assert_allclose(grad, (h - y) / 4, rtol=1e-4, atol=1e-7)


def test_extreme_logits_stay_finite():
    logits = np.array([[80.0, -80.0]], "float32")
    value = float(keras.ops.convert_to_numpy(SparseBinaryCrossentropy()(np.array([1]), logits)))
    assert value == pytest.approx(160.0, rel=1e-5)
