import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import RegularizationDecay
from keras_tl.regularizers import L2
from tests.conftest import TAPS, tiny_data, tiny_source


def model_with_two_terms():
    # With a zero learning rate the terms' unscaled values stay constant, so the logged
    # values show the scale the compiled step actually used in each epoch.
    model = keras_tl.TransferModel(
        tiny_source(),
        3,
        taps=TAPS,
        regularizers=[
            L2(beta=0.1, scope="head", name="l2_head"),
            L2(beta=0.1, scope="backbone", name="l2_backbone"),
        ],
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def scale(model, name):
    return float(keras.ops.convert_to_numpy(next(r for r in model.regularizers if r.name == name).scale))


def test_scales_decay_after_each_epoch_and_the_step_sees_them():
    model = model_with_two_terms()
    x, y = tiny_data(8)
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[RegularizationDecay(0.5)]).history
    for name in ("l2_head", "l2_backbone"):
        logged = np.asarray(history[f"reg/{name}"])
        np.testing.assert_allclose(logged / logged[0], [1.0, 0.5, 0.25], rtol=1e-5)
        assert scale(model, name) == pytest.approx(0.125)


def test_only_the_named_regularizers_decay():
    model = model_with_two_terms()
    x, y = tiny_data(8)
    decay = RegularizationDecay(0.9, regularizers=["l2_backbone"])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[decay]).history
    assert scale(model, "l2_backbone") == pytest.approx(0.81) and scale(model, "l2_head") == 1.0
    assert history["reg/l2_head"][1] == pytest.approx(history["reg/l2_head"][0], rel=1e-6)


def test_validation():
    with pytest.raises(ValueError, match=r"Expected factor > 0 \(a float\). Received: factor=0"):
        RegularizationDecay(0)
    with pytest.raises(ValueError, match=r"Received: regularizers='l2'"):
        RegularizationDecay(0.5, regularizers="l2")
    model = model_with_two_terms()
    x, y = tiny_data(4)
    with pytest.raises(ValueError, match=r"Received unknown: \['nope'\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RegularizationDecay(0.5, regularizers=["nope"])])
    assert RegularizationDecay(0.5, ["l2_head"]).get_config() == {"factor": 0.5, "regularizers": ["l2_head"]}
