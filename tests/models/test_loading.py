import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import L2SP
from tests.conftest import tiny_data


def test_transfer_model_loads_in_safe_mode(source, tmp_path):
    model = keras_tl.TransferModel(source, 3, regularizers=[L2SP()], gradient_rule=keras_tl.gradients.DTNH())
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras_tl.models.load_model(path)  # safe_mode=True
    x, _ = tiny_data()
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_unsafe_content_needs_the_explicit_flag(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    x = keras.layers.Conv2D(4, 3, name="c1")(x)
    source = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(x)))
    model = keras_tl.TransferModel(source, 3)
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match=r"needs unsafe deserialization .* --unsafe_deserialization"):
        keras_tl.models.load_model(path)
    restored = keras_tl.models.load_model(path, unsafe_deserialization=True)
    x = np.ones((2, 8, 8, 3), "float32")
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
