"""`dtype_policy(name)`: Keras' global dtype policy for a block, the previous one after it."""

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy(name):
    """Sets Keras' global dtype policy to `name` (`"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`, ...)
    inside the block and restores the previous one after it, so a run leaves none behind.

    Models and layers built inside keep the policy they were built with.

    Example:
    >>> with keras_tl.utils.policy.dtype_policy("mixed_bfloat16"):
    ...     model, history = keras_tl.fine_tune("l2_sp", source, train)
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
