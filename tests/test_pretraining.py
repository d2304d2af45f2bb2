"""`keras_tl.pretrain` checks its arguments before it builds anything; `keras_tl.models` cards round-trip."""

import types

import keras
import numpy as np
import pytest

import keras_tl

TRAIN = types.SimpleNamespace(num_classes=2, image_size=(8, 8), class_names=["a", "b"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"backbone": "vgg16"},
            r"^Expected backbone to be one of \['resnet50', .*Received: backbone='vgg16'$",
        ),
        (
            {"loss": "hinge"},
            r"^Expected loss to be one of \['cross_entropy', 'pgd'\]. Received: loss='hinge'$",
        ),
        ({"output": "s.h5"}, r"^Expected output to end in '.keras'. Received: output='s.h5'$"),
        ({"epochs": 0}, r"^Expected epochs >= 1 \(an int\). Received: epochs=0$"),
        ({"lr": float("nan")}, r"^Expected lr >= 0 \(a float\). Received: lr=nan$"),
        ({"bn_momentum": 1.0}, r"^Expected bn_momentum in \[0, 1\) or None. Received: bn_momentum=1.0$"),
    ],
)
def test_pretrain_names_a_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_tl.pretrain(TRAIN, **{"backbone": "cifar_resnet8", **kwargs})


def test_a_card_is_saved_beside_its_model_and_read_back_with_it(tmp_path):
    model = keras_tl.testing.tiny_source(classes=3)
    path = str(tmp_path / "sub" / "source.keras")
    keras_tl.models.save_model(
        model, path, {"kind": "source", "backbone": "cifar_resnet8", "image_size": [8, 8]}
    )
    loaded, card = keras_tl.models.load_model_and_card(path)
    assert card == {"kind": "source", "backbone": "cifar_resnet8", "image_size": [8, 8]}
    np.testing.assert_array_equal(
        loaded.predict(np.ones((1, 8, 8, 3)), verbose=0), model.predict(np.ones((1, 8, 8, 3)), verbose=0)
    )
    source, taps, preprocess, size = keras_tl.models.load_source(path)
    assert taps == keras_tl.backbones.default_taps("cifar_resnet8") and preprocess == "cifar_resnet8"
    assert size == (8, 8) and isinstance(source, keras.Model)
    assert keras_tl.models.resolve_preprocess("identity", card, "x") == "identity"
    with pytest.raises(
        ValueError, match=r"Cannot tell the model's preprocessing .* Received: preprocess=''$"
    ):
        keras_tl.models.resolve_preprocess("", {}, "mystery")
    with pytest.raises(ValueError, match=r"^Expected path to end in '.keras'. Received: path='x.h5'$"):
        keras_tl.models.save_model(model, "x.h5", {})


def test_head_bias_prior_starts_every_sigmoid_at_one_over_n(tmp_path):
    train = keras_tl.data.load(
        "digits",
        "train",
        image_size=8,
        classes=[0, 1, 2, 3, 4],
        per_class=2,
        preprocess="cifar_resnet8",
        batch_size=10,
        training=True,
    )
    seen = {}

    class FirstBias(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["bias"] = keras.ops.convert_to_numpy(self.model.layers[-1].bias)
            seen["logits"] = self.model.predict(next(iter(train.dataset))[0], verbose=0)

    output = str(tmp_path / "source.keras")
    keras_tl.pretrain(
        train, "cifar_resnet8", epochs=1, head_bias="prior", output=output, callbacks=[FirstBias()], verbose=0
    )
    np.testing.assert_allclose(seen["bias"], np.full(5, -np.log(4.0)), rtol=1e-6)
    # The features start near zero-mean, so the mean sigmoid is about 1/N (it is exactly 1/N at the bias alone).
    assert abs(float(np.mean(1 / (1 + np.exp(-seen["logits"])))) - 0.2) < 0.1
    card = keras_tl.models.load_card(output)
    assert card["head_bias"] == "prior"
    assert list(card["history"]) == ["accuracy", "loss"] and len(card["history"]["loss"]) == 1
    with pytest.raises(ValueError, match=r"^Expected head_bias to be 'prior', a number or None. Received: head_bias='zero'$"):
        keras_tl.pretrain(train, "cifar_resnet8", head_bias="zero", output=output)
