"""The method registry: `register` a `Method` class by name, `get` one with its hyperparameters, `names()`."""

import dataclasses
import re

from keras_tl.api_export import keras_tl_export
from keras_tl.methods.base import DTNH_SUFFIX, Method, check_hparam

# Registered method classes by name, in registration order (the order of tables and plans).
_REGISTRY = {}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@keras_tl_export("keras_tl.methods.register")
def register(cls):
    """Class decorator: makes `cls` (a `Method` subclass) a frozen dataclass of keyword-only
    hyperparameters and registers it by `cls.name`.

    A name is registered once; registering a class of the same module and name again (a
    re-run notebook cell) replaces it.

    Example:
    >>> @keras_tl.methods.register
    ... class L1SP(keras_tl.methods.Method):
    ...     name = "l1_sp"
    ...     alpha: float = 0.01
    ...     def terms(self, context):
    ...         return [keras_tl.regularizers.from_function(l1_sp, alpha=self.alpha)]
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)) or cls is Method:
        raise TypeError(f"Expected a subclass of keras_tl.methods.Method. Received: {cls!r}")
    if not isinstance(cls.name, str) or not _NAME.match(cls.name) or cls.name.endswith("dtnh"):
        raise ValueError(
            "Expected the method's name to be a lower-case identifier (letters, digits, '_') not ending "
            f"in 'dtnh'. Received: {cls.__name__}.name={cls.name!r}"
        )
    if "__dataclass_fields__" not in cls.__dict__:
        # Keyword-only: a hyperparameter is always named (DELTA(alpha=0.02), never DELTA(0.02)).
        cls = dataclasses.dataclass(frozen=True, kw_only=True, repr=False)(cls)
    known = _REGISTRY.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(
            f"Expected a new method name. Received: {cls.__name__}.name={cls.name!r}, already registered "
            f"by {known.__module__}.{known.__qualname__}"
        )
    _check_select_variants(cls)
    _REGISTRY[cls.name] = cls
    return cls


def _check_select_variants(cls):
    # `select_hparams` (one dict) became `select_variants` (a tuple of them): a class still setting
    # it would silently lose what it asked of `keras_tl.select`.
    if hasattr(cls, "select_hparams"):
        raise ValueError(
            f"Expected select_variants, a tuple of hyperparameter dicts (select_hparams was replaced by it). "
            f"Received: {cls.__name__}.select_hparams={cls.select_hparams!r}"
        )
    variants = cls.select_variants
    if not isinstance(variants, tuple) or not variants or not all(isinstance(v, dict) for v in variants):
        raise ValueError(
            "Expected select_variants to be a non-empty tuple of hyperparameter dicts, e.g. ({},). "
            f"Received: {cls.__name__}.select_variants={variants!r}"
        )


@keras_tl_export("keras_tl.methods.unregister")
def unregister(name):
    """Removes method `name` from the registry (a method registered for a test or an experiment)."""
    registered(name)
    del _REGISTRY[name]


@keras_tl_export("keras_tl.methods.names")
def names():
    """The registered method names, in registration order (each also takes the `+dtnh` suffix)."""
    return list(_REGISTRY)


@keras_tl_export("keras_tl.methods.registered")
def registered(name):
    """The registered class of method `name` (a name from `names()`, without `+dtnh`)."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Expected a method from {names()}, optionally followed by '{DTNH_SUFFIX}'. Received: name={name!r}"
        )
    return _REGISTRY[name]


def split_label(label):
    """`"l2_sp+dtnh"` → `("l2_sp", True)`."""
    if isinstance(label, str) and label.endswith(DTNH_SUFFIX):
        return label[: -len(DTNH_SUFFIX)], True
    return label, False


@keras_tl_export("keras_tl.methods.get")
def get(name, dtnh=False, **hparams):
    """The method `name` (from `names()`, optionally `"<name>+dtnh"`) with `hparams` over its defaults.

    A `Method` instance is returned as it is.

    Example:
    >>> keras_tl.methods.get("l2_sp+dtnh", alpha=0.1)
    L2SP(alpha=0.1, beta=0.01, dtnh=True)
    """
    if isinstance(name, Method):
        return name
    method, with_dtnh = split_label(name)
    try:
        cls = registered(method)
    except ValueError:
        raise ValueError(
            f"Expected a method from {names()}, optionally followed by '{DTNH_SUFFIX}'. Received: name={name!r}"
        ) from None
    for key, value in hparams.items():
        check_hparam(cls, key, value)
    return cls(**hparams, dtnh=bool(dtnh or with_dtnh))
