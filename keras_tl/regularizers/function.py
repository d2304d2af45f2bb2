"""A regularizer from a plain function, like Keras' `LossFunctionWrapper` turns a function into a Loss."""

import inspect
import json

import keras

from keras_tl.api_export import keras_tl_export
from keras_tl.regularizers.base import STEP_VALUES, Regularizer, call_inputs, snake_case


@keras_tl_export("keras_tl.regularizers.FunctionRegularizer")
class FunctionRegularizer(Regularizer):
    """Ω = fn(<step values>, **hparams): a term written as one function.

    The parameters of `fn` without a default name the step values it consumes (from
    `keras_tl.regularizers.base.STEP_VALUES`: `target_weights`, `source_features`,
    `logits`, ...); those with a default are its hyperparameters, overridden by `hparams`.
    `fn` returns a scalar in float32 and receives float32 values under any dtype policy. It
    gets the same treatment as a built-in term: `reg/<name>` in the logs, the `scale`
    variable, DTNH (a term of weights only needs no second backward pass), serialization —
    `fn` must be registered with `keras.saving.register_keras_serializable` for a `.keras`
    file to load it.

    Reference:
        Keras' `keras.losses.LossFunctionWrapper` (the same idea for losses).

    Args:
        fn: the term, `fn(value, ..., hparam=default, ...) -> scalar`.
        name: the term's name (default: `fn.__name__`).
        **hparams: values for `fn`'s parameters with defaults (JSON-serializable).

    Example:
    >>> @keras.saving.register_keras_serializable(package="my_terms")
    ... def l1_sp(target_weights, source_weights, alpha=0.01):
    ...     return alpha * sum(keras.ops.sum(keras.ops.abs(target_weights[k] - source_weights[k]))
    ...                        for k in source_weights)
    >>> term = keras_tl.regularizers.from_function(l1_sp, alpha=0.1)
    >>> model = keras_tl.TransferModel(source, 10, regularizers=[term],
    ...                                gradient_rule=keras_tl.gradients.DTNH())
    """

    def __init__(self, fn, name=None, hparams=None, **kwargs):
        if isinstance(fn, dict):  # from a config
            fn = keras.saving.deserialize_keras_object(fn)
        if not callable(fn):
            raise TypeError(f"Expected fn to be a function. Received: fn={fn!r}")
        self.fn = fn
        self.inputs = call_inputs(fn)
        unknown = [value for value in self.inputs if value not in STEP_VALUES]
        if unknown:
            raise ValueError(
                f"Expected the parameters of {fn.__name__} without a default to name step values from "
                f"{sorted(STEP_VALUES)}; give the others a default (they are hyperparameters). "
                f"Received: parameters {unknown}"
            )
        defaults = {
            p.name: p.default
            for p in inspect.signature(fn).parameters.values()
            if p.default is not p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        hparams = dict(hparams or {})
        extra = sorted(set(hparams) - set(defaults))
        if extra:
            raise ValueError(
                f"Expected hyperparameters of {fn.__name__} from {sorted(defaults)}. Received: {extra}"
            )
        self.hparams = {**defaults, **hparams}
        try:
            json.dumps(self.hparams)
        except TypeError as error:
            raise ValueError(
                f"Expected JSON-serializable hyperparameters. Received: hparams={self.hparams!r}"
            ) from error
        super().__init__(name=name or snake_case(fn.__name__), **kwargs)

    def call(self, *values):
        return keras.ops.cast(self.fn(*values, **self.hparams), "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "fn": keras.saving.serialize_keras_object(self.fn),
            "hparams": dict(self.hparams),
        }


def from_function(fn, name=None, **hparams):
    """`FunctionRegularizer(fn, name, hparams)`: a regularizer from one function (see its docstring)."""
    return FunctionRegularizer(fn, name=name, hparams=hparams)
