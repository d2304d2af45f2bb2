"""One decorator that registers a class for Keras serialization and names its public path."""

import keras

PACKAGE = "keras_tl"


def keras_tl_export(path):
    """Registers `cls` as `keras_tl>ClassName` and records its public `path`.

    Like keras-hub's `keras_hub_export`: `.keras` files and `get_config`
    round trips find the class without `custom_objects`.

    Args:
        path: The public name, e.g. `"keras_tl.regularizers.L2SP"`.
    """

    def decorator(cls):
        cls._keras_tl_public_path = path
        return keras.saving.register_keras_serializable(package=PACKAGE, name=cls.__name__)(cls)

    return decorator
