"""Bad input at the apps' level (issue 7) not covered elsewhere: each fails with a clear message.

Covered elsewhere: unknown --method (tests/apps/test_flags.py), unknown backbone and tap
(tests/backbones, tests/models), unsafe `.keras` files (tests/models/test_loading.py),
the NaN guard itself (tests/callbacks/test_nan_guard.py).
"""

import os

import keras
import pytest
from absl import flags

import keras_tl.data
from apps import common, evaluate, export, finetune, pretrain
from keras_tl import backbones, distribute, fine_tuning, models


@pytest.mark.parametrize("app", [pretrain, finetune])
def test_unknown_distribute_names_the_flag_and_the_allowed_values(app):
    allowed = list(distribute.STRATEGIES[keras.backend.backend()])
    with pytest.raises(flags.IllegalFlagValueError) as info:
        common.parse(app.FLAGS, ["prog", "--distribute=tpu"])
    message = str(info.value)
    assert "flag --distribute=tpu" in message
    assert f"Expected --distribute to be one of {allowed} on the {keras.backend.backend()} backend" in message
    common.parse(app.FLAGS, ["prog", f"--distribute={allowed[1]}"])  # every allowed value parses
    assert app.FLAGS.distribute == allowed[1]


@pytest.mark.parametrize("app", [finetune, evaluate, export])
def test_unsafe_deserialization_is_off_unless_asked_for(app):
    common.parse(app.FLAGS, ["prog"])
    assert app.FLAGS.unsafe_deserialization is False
    common.parse(app.FLAGS, ["prog", "--unsafe_deserialization"])
    assert app.FLAGS.unsafe_deserialization is True


def test_app_loading_of_a_lambda_model_names_the_flag(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = str(tmp_path / "lambda.keras")
    model.save(path)
    with pytest.raises(ValueError, match=r"needs unsafe deserialization .*--unsafe_deserialization"):
        models.load_model_and_card(path)
    model, card = models.load_model_and_card(path, unsafe_deserialization=True)
    assert model.output.shape[-1] == 4 and card == {}
    with pytest.raises(FileNotFoundError, match=r"^Expected a saved Keras model file. Received: .*\(no such file\)$"):
        models.load_model_and_card(str(tmp_path / "missing.keras"))


def test_unknown_source_lists_the_backbones():
    with pytest.raises(ValueError) as info:
        models.load_source("resnet5")
    assert "Expected source to be a backbone name from " + str(list(backbones.NAMES)) in str(info.value)
    assert str(info.value).endswith("Received: source='resnet5'")


def test_nan_loss_in_an_app_run_stops_and_names_the_term(tmp_path):
    train = keras_tl.data.load(
        "digits",
        "train",
        image_size=8,
        batch_size=4,
        training=True,
        augment="none",
        classes=["5", "6"],
        per_class=4,
    )
    evaluation = keras_tl.data.load("digits", "test", image_size=8, batch_size=4, classes=["5", "6"])
    source = backbones.build("cifar_resnet8", weights=None, input_shape=(8, 8, 3))
    backup = str(tmp_path / "backup")
    with pytest.raises(
        FloatingPointError,
        match=r"epoch 1, batch \d+: '(empirical_loss|reg/l2_sp)' (went NaN/inf|diverged first)",
    ):
        fine_tuning.fine_tune_and_evaluate(
            "l2_sp",
            source,
            train,
            evaluation,
            taps=backbones.default_taps("cifar_resnet8"),
            epochs=2,
            lr=1e30,
            verbose=0,
            backup_dir=backup,
        )
    # Epoch 1 never ended: no (NaN) checkpoint written (the folder the run's lock made is left empty).
    assert os.listdir(backup) == []


def test_source_weights_of_another_architecture_name_the_variables(tmp_path):
    path = str(tmp_path / "wide.weights.h5")
    backbones.build("cifar_resnet20", weights=None, input_shape=(8, 8, 3)).save_weights(path)
    with pytest.raises(ValueError) as info:
        models.load_source("cifar_resnet8", path, (8, 8))
    message = str(info.value)
    assert message.startswith(
        f"Expected the weights in {path!r} to fit the model 'cifar_resnet8'. Received: "
    )
    assert (
        "Received: 30 shape mismatch(es): ['layers/batch_normalization_3/vars/0: file (16,) != model (32,)'"
    ) in message
    assert "; 60 variable(s) the model lacks: ['layers/batch_normalization_10/vars/0'" in message
