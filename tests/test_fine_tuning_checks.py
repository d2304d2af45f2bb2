"""What `keras_tl.fine_tune` refuses before training: a bad schedule, a split that does not train,
evaluation classes other than the training classes (item 3 and 7 of issue 26)."""

import json

import keras
import pytest

import keras_tl
from apps import evaluate
from keras_tl import fine_tuning, models

DIGITS = dict(image_size=8, preprocess="cifar_resnet8", batch_size=4, augment="none")


def tiny_source():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    return keras.Model(inputs, keras.layers.Dense(5)(x), name="tiny")


def digits(split, classes=("5", "6", "7"), **kwargs):
    return keras_tl.data.load("digits", split, classes=list(classes), per_class=4, **DIGITS, **kwargs)


@pytest.fixture(scope="module")
def train():
    return digits("train", training=True)


def finetune_and_evaluate(train, evaluation, **kwargs):
    return fine_tuning.fine_tune_and_evaluate(
        "l2_sp", tiny_source(), train, evaluation, taps=[], epochs=1, verbose=0, validation_freq=0, **kwargs
    )


# ------------------------------------------------------------------------------------ item 3


def test_evaluation_classes_in_another_order_are_refused_naming_both(train):
    with pytest.raises(ValueError) as info:
        finetune_and_evaluate(train, digits("test", classes=("6", "5", "7")))
    assert str(info.value) == (
        "Expected the classes of eval_data to be the model's training classes, in the same order. Received: the "
        "same classes in another order: trained on ['5', '6', '7'] (3), eval_data has ['6', '5', '7'] (3). "
        "Select the same classes in the same order (keras_tl.data.load's classes=[...]; apps: --classes)."
    )


def test_evaluation_on_other_classes_is_refused(train):
    with pytest.raises(ValueError, match=r"Received: other classes: trained on \['5', '6', '7'\] \(3\), eval_data has \['0', "):
        finetune_and_evaluate(train, keras_tl.data.load("digits", "test", per_class=2, **DIGITS))


def test_ten_crop_data_with_other_classes_is_refused(train):
    with pytest.raises(ValueError, match="Expected the classes of ten_crop_data to be the model's training classes"):
        finetune_and_evaluate(train, digits("test"), ten_crop_data=digits("test", classes=("7", "6", "5"), crops="ten"))


def test_apps_evaluate_refuses_classes_other_than_the_card_s(tmp_path):
    path = str(tmp_path / "model.keras")
    models.save_model(tiny_source(), path, {"kind": "classifier", "class_names": ["5", "6", "7"], "dataset": "digits"})
    config = evaluate.EvaluateConfig(model=path, classes=("7", "6", "5"), crops=("center",), preprocess="cifar_resnet8")
    with pytest.raises(ValueError) as info:
        evaluate.run(config)
    assert str(info.value).startswith(
        "Expected the classes of --dataset=digits --split=test to be the model's training classes, in the same "
        "order. Received: the same classes in another order: trained on ['5', '6', '7'] (3), --dataset=digits "
        "--split=test has ['7', '6', '5'] (3)."
    )
    with open(tmp_path / "model.json") as handle:
        assert json.load(handle)["class_names"] == ["5", "6", "7"]


# ------------------------------------------------------------------------------------ item 7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-0.1), "Expected lr >= 0 (a float). Received: lr=-0.1"),
        (dict(lr=float("nan")), "Expected lr >= 0 (a float). Received: lr=nan"),
        (dict(epochs=0), "Expected epochs >= 1 (an int). Received: epochs=0"),
        (dict(epochs=2.5), "Expected epochs >= 1 (an int). Received: epochs=2.5"),
        (dict(momentum=1.5), "Expected momentum in [0, 1]. Received: momentum=1.5"),
        (dict(dropout=1.0), "Expected dropout in [0, 1). Received: dropout=1.0"),
        (dict(validation_freq=-1), "Expected validation_freq >= 0 (an int). Received: validation_freq=-1"),
    ],
)
def test_a_schedule_fine_tune_cannot_use_is_one_line_naming_the_argument(train, kwargs, message):
    with pytest.raises(ValueError) as info:
        keras_tl.fine_tune("l2_sp", tiny_source(), train, taps=[], verbose=0, **kwargs)
    assert str(info.value) == message


def test_a_split_loaded_with_training_false_is_refused():
    evaluation_split = digits("train", training=False)
    with pytest.raises(ValueError) as info:
        keras_tl.fine_tune("l2_sp", tiny_source(), evaluation_split, taps=[], epochs=1, verbose=0)
    assert str(info.value) == (
        "Expected train to be a training split, keras_tl.data.load(..., training=True): shuffled and augmented "
        "every epoch. Received: a split loaded with training=False (split='train')"
    )
