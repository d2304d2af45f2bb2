"""One decorator that names a unit's public path (and registers a class for Keras serialization).

Like keras-hub's `keras_hub_export`: every public class and function carries its path, the
package namespaces (`keras_tl.__all__`, `dir(keras_tl)`) are built from them, and
`tests/test_api.py` checks that each path imports to its object.
"""

import keras

PACKAGE = "keras_tl"

# Public path -> object, filled by the decorator as modules are imported: the registry of
# built-ins that `keras_tl.regularizers.ALL`, the contract tests and the namespace test read.
EXPORTED = {}


def keras_tl_export(path, package=PACKAGE):
    """Records `obj`'s public `path`; a class is also registered as `<package>>ClassName`.

    `.keras` files and `get_config` round trips find the class without `custom_objects`.

    Args:
        path: The public name, e.g. `"keras_tl.regularizers.L2SP"`.
        package: The serialization package: `keras_tl` (what `.keras` files name), or another
            where a public class shares a name with one of another module
            (`keras_tl.methods.L2SP` the method, `keras_tl.regularizers.L2SP` its term).
    """

    def decorator(obj):
        obj._keras_tl_public_path = path
        EXPORTED[path] = obj
        if isinstance(obj, type):
            return keras.saving.register_keras_serializable(package=package, name=obj.__name__)(obj)
        return obj

    return decorator


def exported(prefix):
    """The exported objects whose public path starts with `prefix`, in import order."""
    return tuple(obj for path, obj in EXPORTED.items() if path.startswith(prefix))


def public_names(module):
    """The names `module` (e.g. `"keras_tl.methods"`) exports directly: the last part of each path under it."""
    prefix = module + "."
    return [path[len(prefix) :] for path in EXPORTED if path.startswith(prefix) and "." not in path[len(prefix) :]]
