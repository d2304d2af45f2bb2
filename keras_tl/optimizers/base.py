"""The base of keras_tl's optimizer wrappers: the inner optimizer's step, then a rule applied to its result.

Modelled on Keras' `LossScaleOptimizer`: the wrapper owns no learning rate (`learning_rate`
and `iterations` are the inner optimizer's), its `variables` are its own followed by the
inner optimizer's, so `model.save_weights`, `.keras` files and the JAX trainer's
`stateless_apply` carry both. Under a `mixed_*` policy `compile` wraps the wrapper in a
`LossScaleOptimizer`, which unscales the gradients and skips non-finite steps before the
wrapper sees them.
"""

import re

import keras
from keras import ops


def check_patterns(name, patterns):
    """`patterns` as a tuple of regular expressions; raises a `ValueError` naming `name` otherwise."""
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise ValueError(
            f"Expected {name} to be a list of regular expressions matched against variable paths "
            f"(e.g. ('^head/',)). Received: {name}={patterns!r}"
        )
    for pattern in patterns:
        try:
            re.compile(pattern)
        except (TypeError, re.error) as error:
            raise ValueError(
                f"Expected {name} to be a list of regular expressions ({error}). Received: {name}={patterns!r}"
            ) from error
    return tuple(patterns)


def matches(patterns, variable):
    """Whether one of `patterns` is found (`re.search`) in `variable.path`, as Keras' `exclude_from_weight_decay`."""
    return any(re.search(pattern, variable.path) for pattern in patterns)


def read(variable):
    """The value `variable` holds now, as a tensor that later writes to it leave unchanged.

    On TensorFlow `ops.convert_to_tensor` returns the variable itself; the copy is a read
    (ordered before later writes in a graph), free under XLA.
    """
    return ops.copy(ops.convert_to_tensor(variable))


def _check_inner(owner, inner):
    if not isinstance(inner, keras.optimizers.Optimizer):
        raise TypeError(
            f"Expected inner_optimizer to be a keras.optimizers.Optimizer instance. Received: inner_optimizer={inner!r}"
        )
    if isinstance(inner, keras.optimizers.LossScaleOptimizer):
        raise ValueError(
            f"Expected an inner optimizer that is not a LossScaleOptimizer: wrap the other way round, "
            f"LossScaleOptimizer({owner}(...)), which is what compile does under a mixed_float16 policy. "
            f"Received: inner_optimizer={inner!r}"
        )
    # Both change when the inner step writes the variables, which the wrapper's rule must see each step.
    if inner.gradient_accumulation_steps:
        raise ValueError(
            f"Expected an inner optimizer without gradient accumulation ({owner} acts on every step). "
            f"Received: gradient_accumulation_steps={inner.gradient_accumulation_steps!r}"
        )
    if inner.use_ema:
        raise ValueError(
            f"Expected an inner optimizer without use_ema (its average would skip {owner}'s step). "
            f"Received: use_ema={inner.use_ema!r}"
        )
    if inner.built:
        raise ValueError(
            f"Expected an inner optimizer that is not built yet ({owner} builds it on the model's variables). "
            f"Received: inner_optimizer={inner!r} (built)"
        )
    return inner


class OptimizerWrapper(keras.optimizers.Optimizer):
    """Runs `inner_optimizer`'s step, then `update` on the variables it selects.

    Subclasses define `selects(variable)`, `build_state(var_list)` (their own variables,
    made with `add_variable*`) and `update(entries)`, where each entry is
    `(position, gradient, variable, previous_value)` for a selected variable with a
    gradient: `position` indexes the list the optimizer was built with, `variable` already
    holds the inner step's result θ̃ and `previous_value` is θ_{t−1} when
    `needs_previous_values` (else `None`). Variables without a gradient are left to the
    inner optimizer, which skips them.
    """

    needs_previous_values = False

    def __init__(self, inner_optimizer, name=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"Expected no base optimizer arguments on {type(self).__name__}: set them on the inner "
                f"optimizer. Received: {', '.join(f'{k}={v!r}' for k, v in kwargs.items())}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = _check_inner(type(self).__name__, inner_optimizer)

    # ------------------------------------------------------------------ delegated to the inner optimizer

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    # The inner optimizer unscales what `scale_loss` scaled; a `LossScaleOptimizer` around the
    # wrapper sets this to None, which must reach the inner optimizer or it would unscale twice.
    @property
    def loss_scale_factor(self):
        inner = self.__dict__.get("inner_optimizer")
        return None if inner is None else inner.loss_scale_factor

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        inner = self.__dict__.get("inner_optimizer")
        if inner is not None:
            inner.loss_scale_factor = value

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ build and step

    def selects(self, variable):
        raise NotImplementedError

    def build_state(self, var_list):
        raise NotImplementedError

    def update(self, entries):
        raise NotImplementedError

    def build(self, var_list):
        var_list = list(var_list)
        super().build(var_list)
        self.inner_optimizer.build(var_list)
        # Plain Python values: a list of model variables here would be tracked as optimizer state.
        self._positions = {id(v): i for i, v in enumerate(var_list)}
        self._selected = [bool(self.selects(v)) for v in var_list]
        self.build_state(var_list)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    f"Expected a built {type(self).__name__} when grads come without variables. "
                    "Call optimizer.build(model.trainable_variables) first."
                )
            trainable_variables = self._trainable_variables
        else:
            trainable_variables = list(trainable_variables)
            if not self.built:
                self.build(trainable_variables)
        grads = list(grads)
        if not grads:
            return
        positions = [self._positions[id(v)] for v in trainable_variables]
        chosen = [g is not None and self._selected[p] for g, p in zip(grads, positions, strict=True)]
        previous = [
            read(v) if c and self.needs_previous_values else None
            for v, c in zip(trainable_variables, chosen, strict=True)
        ]
        self.inner_optimizer.apply(grads, trainable_variables)
        entries = [
            (p, g, v, prev)
            for p, g, v, prev, c in zip(positions, grads, trainable_variables, previous, chosen, strict=True)
            if c
        ]
        self.update(entries)
        for _, _, variable, _ in entries:
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable))

    # ------------------------------------------------------------------ serialization

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(self.inner_optimizer),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


class AnchoredWrapper(OptimizerWrapper):
    """A wrapper whose rule needs the anchor θ0 of each selected variable, an optimizer variable.

    By default θ0 is the value the variable holds when the optimizer is built: the start of
    fine-tuning, i.e. the source weights (Keras builds the optimizer before the first step;
    `keras_tl.callbacks.AtomicBackupAndRestore` builds it before loading a checkpoint, which
    then restores the saved anchors). `anchors` gives them explicitly instead, as
    `{variable.path: array}`; it is used once, at build, and is not part of the config.
    Variables whose path matches one of `exclude` (regular expressions, `re.search`) get the
    inner optimizer's step unchanged, e.g. `exclude=("^head/",)` for the new head of a
    `keras_tl.TransferModel`.
    """

    def __init__(self, inner_optimizer, exclude=(), anchors=None, name=None, **kwargs):
        super().__init__(inner_optimizer, name=name, **kwargs)
        self.exclude = check_patterns("exclude", exclude)
        if anchors is not None and not isinstance(anchors, dict):
            raise ValueError(
                f"Expected anchors to be None or a dict {{variable.path: array}}. Received: anchors={anchors!r}"
            )
        self._anchor_values = anchors

    def selects(self, variable):
        return not matches(self.exclude, variable)

    def add_anchors(self, var_list):
        """One anchor variable per selected variable (`None` for the others), in `var_list` order."""
        given = self._anchor_values
        if given is not None:
            self._check_given_anchors(var_list, given)
        anchors = []
        for variable, selected in zip(var_list, self._selected, strict=True):
            if not selected:
                anchors.append(None)
                continue
            # A copy: under JAX the anchor must not share the variable's buffer (both are donated).
            value = (lambda v: lambda shape, dtype=None: read(v))(variable)
            if given is not None:
                value = (lambda a: lambda shape, dtype=None: ops.cast(a, dtype))(given[variable.path])
            anchors.append(self.add_variable_from_reference(variable, name="anchor", initializer=value))
        self._anchor_values = None
        self._anchors = anchors
        return anchors

    def anchor(self, variable):
        """The anchor θ0 (an optimizer variable) of a model variable, `None` if it is excluded."""
        if not self.built or id(variable) not in self._positions:
            raise ValueError(
                f"Expected a variable {type(self).__name__} was built with. Received: {variable.path!r}"
                + ("" if self.built else " (the optimizer is not built yet)")
            )
        return self._anchors[self._positions[id(variable)]]

    def _check_given_anchors(self, var_list, given):
        paths = {v.path for v in var_list}
        missing = [v.path for v, s in zip(var_list, self._selected, strict=True) if s and v.path not in given]
        unknown = sorted(set(given) - paths)
        shapes = [
            f"{v.path}: anchor {tuple(ops.shape(given[v.path]))} != variable {tuple(v.shape)}"
            for v, s in zip(var_list, self._selected, strict=True)
            if s and v.path in given and tuple(ops.shape(given[v.path])) != tuple(v.shape)
        ]
        if missing or unknown or shapes:
            raise ValueError(
                "Expected anchors for every variable the optimizer projects (paths not matching exclude), "
                f"with its shape. Received: missing={missing}, unknown={unknown}, shape mismatches={shapes}"
            )

    def get_config(self):
        return {**super().get_config(), "exclude": list(self.exclude)}
