"""Loading `.keras` files safely: unsafe deserialization only when explicitly asked for."""

import keras

UNSAFE_HINT = (
    "The file needs unsafe deserialization (e.g. a Lambda layer holds Python code). Load it with "
    "keras_tl.models.load_model(path, unsafe_deserialization=True) — apps: --unsafe_deserialization — "
    "only if you trust where the file comes from."
)


def load_model(path, unsafe_deserialization=False, compile=True):
    """`keras.models.load_model` with `safe_mode=True` unless `unsafe_deserialization=True`.

    A file that needs unsafe deserialization fails with a message naming the flag.
    """
    try:
        return keras.models.load_model(path, safe_mode=not unsafe_deserialization, compile=compile)
    except ValueError as error:
        if not unsafe_deserialization and "safe_mode" in str(error):
            raise ValueError(f"Could not load {path!r} safely. {UNSAFE_HINT}\n(Keras said: {error})") from error
        raise
