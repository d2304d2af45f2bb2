"""Loading `.keras` files safely, and weights files strictly, with messages that say what is wrong."""

import os
import tempfile
import zipfile

import keras

from keras_tl.models import legacy

UNSAFE_HINT = (
    "The file needs unsafe deserialization (e.g. a Lambda layer holds Python code). Load it with "
    "keras_tl.models.load_model(path, unsafe_deserialization=True) — apps: --unsafe_deserialization — "
    "only if you trust where the file comes from."
)


def load_model(path, unsafe_deserialization=False, compile=True):
    """`keras.models.load_model` with `safe_mode=True` unless `unsafe_deserialization=True`.

    A file that needs unsafe deserialization fails with a message naming the flag. A file
    that is not a zip archive (empty, or cut short by an interrupted copy or save) fails
    saying so; Keras reports it as "File not found". A file of keras_tl 0.1 is converted in
    memory (`keras_tl.models.legacy`), with a warning saying how to rewrite it.
    """
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ValueError(
            f"Expected a valid .keras archive (a zip file). Received: {path!r}, {os.path.getsize(path)} "
            "bytes that are not one: the file is empty, cut short (an interrupted copy or save), or "
            "of another format."
        )
    if legacy.is_legacy(path):
        return legacy.load_legacy(path, lambda converted: load_model(converted, unsafe_deserialization, compile))
    try:
        return keras.models.load_model(path, safe_mode=not unsafe_deserialization, compile=compile)
    except ValueError as error:
        if not unsafe_deserialization and "safe_mode" in str(error):
            raise ValueError(
                f"Could not load {path!r} safely. {UNSAFE_HINT}\n(Keras said: {error})"
            ) from error
        raise


def load_weights(model, path):
    """`model.load_weights(path)` after checking that the file holds exactly the model's variables.

    Keras loads a mismatched file layer by layer: it prints a "Skipping nested container"
    warning per nested model and then fails with e.g. "expected 2 variables, received 0".
    Here the file's variables are compared with those the model itself would write (same
    paths, same shapes) first, and a mismatch fails naming every differing variable.
    """
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected a weights file (.weights.h5). Received: {path!r} (no such file)")
    with tempfile.TemporaryDirectory() as folder:
        own = os.path.join(folder, "model.weights.h5")
        model.save_weights(own)
        expected = _variable_shapes(h5py, own)
    try:
        received = _variable_shapes(h5py, path)
    except OSError as error:
        raise ValueError(
            f"Expected a readable weights file (.weights.h5). Received: {path!r} ({error})"
        ) from error
    problems = describe_mismatch(expected, received)
    if problems:
        raise ValueError(
            f"Expected the weights in {path!r} to fit the model {model.name!r}. Received: {problems}"
        )
    model.load_weights(path)


def describe_mismatch(expected, received):
    """`""` when the `{variable path: shape}` dicts agree, else what differs (shapes first)."""
    shapes = [
        f"{key}: file {received[key]} != model {expected[key]}"
        for key in expected
        if key in received and received[key] != expected[key]
    ]
    parts = []
    for what, keys in (
        ("shape mismatch(es)", shapes),
        ("variable(s) the file lacks", [key for key in expected if key not in received]),
        ("variable(s) the model lacks", [key for key in received if key not in expected]),
    ):
        if keys:
            parts.append(f"{len(keys)} {what}: {keys[:10]}{' ...' if len(keys) > 10 else ''}")
    return "; ".join(parts)


def _variable_shapes(h5py, path):
    """`{dataset path: shape}` of a Keras weights file (groups are layers, datasets their variables)."""
    shapes = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, item: (
                shapes.__setitem__(name, tuple(item.shape)) if isinstance(item, h5py.Dataset) else None
            )
        )
    return shapes
