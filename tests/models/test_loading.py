import os
import warnings

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


@pytest.mark.parametrize("cut", [0, 0.5])
def test_an_empty_or_truncated_keras_file_is_named_as_such_not_as_missing(tmp_path, cut):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(str(tmp_path / "full.keras"))
    data = (tmp_path / "full.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError) as info:
        keras_tl.models.load_model(str(path))
    assert str(info.value) == (
        f"Expected a valid .keras archive (a zip file). Received: {str(path)!r}, {int(len(data) * cut)} bytes "
        "that are not one: the file is empty, cut short (an interrupted copy or save), or of another format."
    )


def test_weights_of_a_head_with_another_class_count_name_the_shape_mismatch(source, tmp_path):
    path = str(tmp_path / "five.weights.h5")
    keras_tl.TransferModel(source, 5).save_weights(path)
    model = keras_tl.TransferModel(source, 3)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ValueError) as info:
        warnings.simplefilter("always")
        keras_tl.models.load_weights(model, path)
    assert str(info.value) == (
        f"Expected the weights in {path!r} to fit the model 'transfer_model'. Received: 2 shape mismatch(es): "
        "['head/vars/0: file (64, 5) != model (64, 3)', 'head/vars/1: file (5,) != model (3,)']"
    )
    assert [str(w.message) for w in caught if "Skipping" in str(w.message)] == []  # no Keras noise first
    keras_tl.models.load_weights(keras_tl.TransferModel(source, 5), path)  # a matching model loads


def test_resuming_a_backup_of_another_class_count_names_the_mismatch(source, tmp_path):
    x, y = tiny_data()
    backup = str(tmp_path / "backup")

    def fit(classes, epochs):
        model = keras_tl.TransferModel(source, classes)
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        stop = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epoch == 0 and 1 / 0)
        model.fit(
            x,
            y,
            epochs=epochs,
            verbose=0,
            callbacks=[keras_tl.callbacks.AtomicBackupAndRestore(backup), stop],
        )

    with pytest.raises(ZeroDivisionError):  # stops after epoch 1's checkpoint
        fit(3, 2)
    with pytest.raises(ValueError) as info:
        fit(4, 2)
    assert str(info.value).startswith(
        f"Expected the weights in {os.path.join(backup, 'epoch-1.weights.h5')!r} to fit the model "
        "'transfer_model'. Received: 2 shape mismatch(es): ['head/vars/0: file (64, 3) != model (64, 4)'"
    )
    assert str(info.value).endswith(
        f"The checkpoint in {backup} was written by a run with other settings: rerun with the flags that "
        "wrote it, use a new folder, or overwrite=True (apps.finetune: --overwrite) to start over."
    )
