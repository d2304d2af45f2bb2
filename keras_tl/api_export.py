"""One decorator that registers a class for Keras serialization and names its public path."""

import keras

PACKAGE = "keras_tl"

# Public path -> class, filled by the decorator as modules are imported: the registry of
# built-ins that `keras_tl.regularizers.ALL` and the contract tests read.
EXPORTED = {}


def keras_tl_export(path, package=PACKAGE):
    """Registers `cls` as `<package>>ClassName` and records its public `path`.

    Like keras-hub's `keras_hub_export`: `.keras` files and `get_config`
    round trips find the class without `custom_objects`.

    Args:
        path: The public name, e.g. `"keras_tl.regularizers.L2SP"`.
        package: The serialization package: `keras_tl` (what `.keras` files name), or another
            where a public class shares a name with one of another module
            (`keras_tl.methods.L2SP` the method, `keras_tl.regularizers.L2SP` its term).
    """

    def decorator(cls):
        cls._keras_tl_public_path = path
        EXPORTED[path] = cls
        return keras.saving.register_keras_serializable(package=package, name=cls.__name__)(cls)

    return decorator


def exported(prefix):
    """The exported classes whose public path starts with `prefix`, in import order."""
    return tuple(cls for path, cls in EXPORTED.items() if path.startswith(prefix))
