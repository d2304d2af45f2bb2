"""JAX train/test steps for `TransferModel`: stateless, `jax.value_and_grad` / `jax.vjp`."""

import weakref

import jax
import jax.numpy as jnp
import keras


def _scoped_values(scope, variables, fallback):
    """The values `variables` hold at the end of `scope` (their inputs if untouched)."""
    values = []
    for variable, old in zip(variables, fallback, strict=True):
        new = scope.get_current_value(variable)
        values.append(old if new is None else new)
    return values


class JAXTransferTrainer:
    def _mapping(self, trainable, non_trainable, metrics=None):
        mapping = list(zip(self.trainable_variables, trainable, strict=True))
        mapping += list(zip(self.non_trainable_variables, non_trainable, strict=True))
        if metrics is not None:
            mapping += list(zip(self.metrics_variables, metrics, strict=True))
        return mapping

    def _forward(self, trainable, non_trainable, metrics, x, y, sample_weight, training, regularizers):
        """Pure forward pass: `(empirical, terms), (y_pred, non_trainable', metrics')`."""
        # `collect_losses`: layer losses (`add_loss`, activity regularizers) enter J through
        # `compute_loss`, as in Keras' own JAX trainer; without it they are dropped.
        mapping = self._mapping(trainable, non_trainable, metrics)
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            step = self.objective.forward(x, y, sample_weight, training, regularizers)
        non_trainable = _scoped_values(scope, self.non_trainable_variables, non_trainable)
        metrics = _scoped_values(scope, self.metrics_variables, metrics)
        return (step.empirical, step.terms), (step.logits, non_trainable, metrics)

    def _weight_terms(self, trainable, non_trainable, regularizers, scale):
        """Pure weight-only terms (times the loss scale): their gradient needs no pass through the network."""
        with keras.StatelessScope(state_mapping=self._mapping(trainable, non_trainable)):
            terms = self.objective.weight_terms(regularizers)
        return scale * sum(terms.values()), terms

    def _loss_scale(self, optimizer_state):
        """The factor `optimizer.scale_loss` applies now (a `LossScaleOptimizer`'s dynamic scale)."""
        mapping = list(zip(self.optimizer.variables, optimizer_state, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return self.optimizer.scale_loss(jnp.ones((), "float32"))

    def train_step(self, state, data):
        trainable, non_trainable, optimizer_state, metrics = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        rule = self.gradient_rule
        forward_regs, weight_regs = self.objective.partition(rule)
        # Differentiating scale·loss is what Keras' trainer does; `stateless_apply` unscales.
        scale = self._loss_scale(optimizer_state)

        if rule is None:

            def total_loss(trainable):
                (empirical, terms), aux = self._forward(
                    trainable, non_trainable, metrics, x, y, sample_weight, True, forward_regs
                )
                return scale * (empirical + sum(terms.values())), ((empirical, terms), aux)

            (_, ((empirical, terms), aux)), gradients = jax.value_and_grad(total_loss, has_aux=True)(trainable)
            stats = None
        else:

            def forward(trainable):
                (empirical, terms), aux = self._forward(
                    trainable, non_trainable, metrics, x, y, sample_weight, True, forward_regs
                )
                return (empirical, sum(terms.values(), jnp.zeros(()))), (terms, aux)

            # One forward pass, two cotangents: ∇J and ∇Ω_features share the activations.
            (empirical, forward_total), pullback, (terms, aux) = jax.vjp(forward, trainable, has_aux=True)
            # The cotangent `scale` differentiates scale·J and scale·Ω: DTNH is scale-equivariant.
            loss_cotangent = (scale.astype(empirical.dtype), jnp.zeros_like(forward_total))
            (loss_gradients,) = pullback(loss_cotangent)
            if forward_regs:
                (reg_gradients,) = pullback((jnp.zeros_like(empirical), scale.astype(forward_total.dtype)))
            else:
                reg_gradients = jax.tree.map(jnp.zeros_like, loss_gradients)
            if weight_regs:
                (_, weight_terms), weight_gradients = jax.value_and_grad(self._weight_terms, has_aux=True)(
                    trainable, non_trainable, weight_regs, scale
                )
                reg_gradients = jax.tree.map(jnp.add, reg_gradients, weight_gradients)
                terms = {**terms, **weight_terms}
            terms = {r.name: terms[r.name] for r in self.objective.active}
            gradients, stats = rule.combine(loss_gradients, reg_gradients)

        y_pred, non_trainable, metrics = aux
        trainable, optimizer_state = self.optimizer.stateless_apply(optimizer_state, gradients, trainable)
        logs, metrics = self._stateless_logs(metrics, x, y, y_pred, sample_weight, empirical, terms, stats)
        return logs, (trainable, non_trainable, optimizer_state, metrics)

    def test_step(self, state, data):
        trainable, non_trainable, metrics = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        (empirical, terms), (y_pred, non_trainable, metrics) = self._forward(
            trainable, non_trainable, metrics, x, y, sample_weight, False, self.objective.active
        )
        logs, metrics = self._stateless_logs(metrics, x, y, y_pred, sample_weight, empirical, terms)
        return logs, (trainable, non_trainable, metrics)

    def _stateless_logs(self, metrics, x, y, y_pred, sample_weight, empirical, terms, stats=None):
        mapping = list(zip(self.metrics_variables, metrics, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            logs = self.objective.logs(x, y, y_pred, sample_weight, empirical, terms, stats)
        return logs, _scoped_values(scope, self.metrics_variables, metrics)


def compile_function(fn):
    """`fn` (keras.ops on arrays) compiled by XLA: callbacks' per-step math, outside `train_step`."""
    return jax.jit(fn)


# One compiled gradient pass per model: `keras_tl.callbacks.AutoRGNScales` calls it every epoch.
_LOSS_GRADIENT_FUNCTIONS = weakref.WeakKeyDictionary()


def _loss_gradient_function(model):
    trainable_variables, non_trainable_variables = model.trainable_variables, model.non_trainable_variables

    def scaled_loss(trainable, non_trainable, x, y, sample_weight, scale):
        mapping = list(zip(trainable_variables, trainable, strict=True))
        mapping += list(zip(non_trainable_variables, non_trainable, strict=True))
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            y_pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        return scale * loss, _scoped_values(scope, non_trainable_variables, non_trainable)

    return jax.jit(jax.value_and_grad(scaled_loss, has_aux=True))


def loss_gradients(model, x, y, sample_weight=None):
    """∇ of `model`'s compiled loss (times its optimizer's loss scale) on one batch, in training mode.

    The data pass of `keras_tl.callbacks.AutoRGNScales`; the non-trainable values the
    forward pass changes (BatchNorm's moving statistics) are written back, as on TensorFlow.
    """
    # Rebuilt when the variables change (a layer frozen or unfrozen between two fits).
    key = tuple(id(v) for v in model.trainable_variables + model.non_trainable_variables)
    cached = _LOSS_GRADIENT_FUNCTIONS.get(model)
    if cached is None or cached[0] != key:
        _LOSS_GRADIENT_FUNCTIONS[model] = cached = (key, _loss_gradient_function(model))
    scale = jnp.ones((), "float32")
    if model.optimizer is not None:
        scale = model.optimizer.scale_loss(scale)
    (_, updated), gradients = cached[1](
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        x,
        y,
        sample_weight,
        scale,
    )
    for variable, value in zip(model.non_trainable_variables, updated, strict=True):
        variable.assign(value)
    return gradients
