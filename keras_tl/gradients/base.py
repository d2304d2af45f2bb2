"""`GradientRule`: the declared protocol of a rule combining ∇J and ∇Ω into the optimizer's direction."""

from keras_tl.api_export import keras_tl_export


@keras_tl_export("keras_tl.gradients.GradientRule")
class GradientRule:
    """Base of the gradient rules a `TransferModel` hands its two gradients to.

    Like optax's `GradientTransformation`, a rule is a pure function of the step's gradients
    with a name: with a rule, the train step differentiates the empirical loss J and the sum
    of the regularization terms Ω separately (from one shared forward pass), calls
    `combine(loss_grads, reg_grads)`, and gives the optimizer the returned direction. It logs
    each of `stat_names` as `<name>/<stat>`.

    Subclasses set `name` and `stat_names`, implement `combine`, and keep `get_config`
    JSON-safe (their hyperparameters); `from_config` is `cls(**config)`.

    Example:
    >>> @keras.saving.register_keras_serializable(package="my_rules")
    ... class Sum(keras_tl.gradients.GradientRule):
    ...     name = "sum"
    ...     def combine(self, loss_grads, reg_grads):
    ...         return [j + r for j, r in zip(loss_grads, reg_grads)], {}
    """

    name = None
    stat_names = ()

    def combine(self, loss_grads, reg_grads):
        """`(directions, stats)`: one direction per variable, and a dict keyed by `stat_names`."""
        raise NotImplementedError(f"{type(self).__name__} must implement combine(loss_grads, reg_grads).")

    def __call__(self, loss_grads, reg_grads):
        return self.combine(loss_grads, reg_grads)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
