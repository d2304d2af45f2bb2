"""Shared checks for the output-level regularizers (two-head target): fit with DTNH, save, reload."""

import json

import keras
import numpy as np

import keras_tl
from tests.conftest import compile_sgd, tiny_data, tiny_source


def fit_save_reload(regularizer, tmp_path, loss=None):
    """Fits a two-head TransferModel with `regularizer` and DTNH, saves it as .keras, reloads it.

    Returns `(history, model, restored)` after checking the restored model's config, weights
    and regularization term on one batch.
    """
    model = keras_tl.TransferModel(
        tiny_source(),
        3,
        keep_source_head=True,
        regularizers=[regularizer],
        gradient_rule=keras_tl.gradients.DTNH(),
    )
    if loss is None:
        compile_sgd(model)
    else:
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    x, y = tiny_data()
    source_head_before = [keras.ops.convert_to_numpy(w) for w in model.source_head.weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    value = history[f"reg/{regularizer.name}"][0]
    assert np.isfinite(value) and value > 0
    assert {"dtnh/projected", "empirical_loss"} <= set(history)
    if "source_head_logits" in regularizer.inputs:
        # The upstream head is trained by the term alone (the loss never sees it), through DTNH.
        after = [keras.ops.convert_to_numpy(w) for w in model.source_head.weights]
        assert any(not np.allclose(a, b) for a, b in zip(after, source_head_before, strict=True))

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert json.dumps(restored.get_config(), sort_keys=True) == json.dumps(model.get_config(), sort_keys=True)
    terms = [
        float(keras.ops.convert_to_numpy(m.objective.terms(m.objective.step_values(x, y))[regularizer.name]))
        for m in (model, restored)
    ]
    assert terms[0] == terms[1] and np.isfinite(terms[0])
    return history, model, restored
