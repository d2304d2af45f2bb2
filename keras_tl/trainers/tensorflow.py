"""TensorFlow train/test steps for `TransferModel` (GradientTape), `tf.distribute`-aware."""

import keras
import tensorflow as tf


def _zeros_for_none(gradients, variables):
    # tf.UnconnectedGradients.ZERO fails on Keras variables (their dtype is a string).
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(gradients, variables, strict=True)]


def _sum(terms):
    return tf.add_n(list(terms.values())) if terms else tf.zeros(())


def _replica_share(terms, regularizers, replicas):
    """Σ of each term's share of the global objective on this replica.

    A term averaged over the batch (or of the weights alone) has the global value on every
    replica: each contributes 1/R of it, as Keras divides its own losses. A term summed over
    the batch (`sums_over_batch`) is, over this replica's shard, already its share of the sum.
    """
    summed = {r.name for r in regularizers if r.sums_over_batch}
    return _sum({name: term if name in summed else term / replicas for name, term in terms.items()})


def _logged(terms, regularizers, replicas):
    # The metrics average the replicas' values: a shard's sum times R averages to the global sum.
    summed = {r.name for r in regularizers if r.sums_over_batch}
    return {name: term * replicas if name in summed else term for name, term in terms.items()}


def _replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync


def _spec(tensor):
    if tensor is None:
        return None
    return keras.KerasTensor(tuple(tensor.shape), dtype=keras.backend.standardize_dtype(tensor.dtype))


def _eager_variables(next_creator, **kwargs):
    # A tf.function's own creator lifts a variable made in its trace and marks the trace to be
    # redone; a variable that asks not to be lifted is left to the next creator, here eager.
    kwargs["experimental_enable_variable_lifting"] = False
    return next_creator(**kwargs)


def _build_state_outside_trace(model, y, y_pred, optimizer=True):
    """Creates the optimizer's and the compiled metrics' variables eagerly, once.

    Without a strategy, Keras' TF trainer leaves them to the first trace of the step (its
    `_maybe_symbolic_build` returns early), and a `tf.function` whose first trace creates
    variables traces it a second time: 3-7 s of each 15-25 s `benchmarks.suite --quick` run
    on 2 CPU cores. Made eagerly here, from the step's shapes, they are the
    variables Keras' `_symbolic_build` makes before the trace under a strategy (where this
    does nothing: Keras has built them).
    """
    if tf.distribute.has_strategy():
        return
    pending = [m for m in model.metrics if getattr(m, "built", True) is False]  # Keras' CompileMetrics
    build_optimizer = optimizer and model.optimizer is not None and not model.optimizer.built
    if not (pending or build_optimizer):
        return
    specs = keras.tree.map_structure(_spec, (y, y_pred))
    with tf.init_scope(), tf.variable_creator_scope(_eager_variables):
        if build_optimizer:
            model.optimizer.build(model.trainable_variables)
        for metric in pending:
            metric.build(*specs)


class _StructureReducingStrategy:
    """A `MultiWorkerMirroredStrategy` whose `reduce` maps over a nested value.

    Keras 3.15's TF `fit` reduces its first distributed batch, an `(x, y)` tuple, with one
    `strategy.reduce` call (`keras/src/backend/tensorflow/trainer.py`, `_maybe_symbolic_build`);
    `MultiWorkerMirroredStrategy`'s collective reduce takes one tensor only and fails before
    the first step. Every other attribute is the strategy's own.
    """

    def __init__(self, strategy):
        self._strategy = strategy

    def reduce(self, reduce_op, value, axis=None):
        return keras.tree.map_structure(lambda v: self._strategy.reduce(reduce_op, v, axis=axis), value)

    def __getattr__(self, name):
        return getattr(self._strategy, name)


class TensorFlowTransferTrainer:
    """Under `tf.distribute` each replica runs this step on its shard of the global batch.

    Keras divides its own losses by the replica count and its optimizer sums the replicas'
    gradients; the batch-averaged and weight terms are divided here the same way and the
    batch-summed ones (`Regularizer.sums_over_batch`) are not, so the summed gradient is
    that of the global objective. DTNH's projection is not
    linear, so with a gradient rule both gradients are all-reduced first, the rule runs on
    the global gradients (identically on every replica), and each replica hands the
    optimizer 1/R of the result for it to sum back. Logged values are per-replica values,
    averaged across replicas by the metrics.
    """

    @property
    def distribute_strategy(self):
        strategy = super().distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return _StructureReducingStrategy(strategy)
        return strategy

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        objective, rule, replicas = self.objective, self.gradient_rule, _replicas()
        forward_regs, weight_regs = objective.partition(rule)
        # The network's tape is persistent only when a forward term needs a second backward
        # pass from the shared forward; weight-only terms get a tape of their own ops.
        with tf.GradientTape(persistent=rule is not None and bool(forward_regs)) as tape:
            step = objective.forward(x, y, sample_weight, True, forward_regs)  # J already / R
            _build_state_outside_trace(self, y, step.logits)
            regularization = _replica_share(step.terms, forward_regs, replicas)
            # As Keras' trainer: scaled inside the tape (a `LossScaleOptimizer` under a mixed
            # policy; identity otherwise), unscaled by `apply_gradients`.
            if rule is None:
                scaled_total = self.optimizer.scale_loss(step.empirical + regularization)
            else:
                scaled_empirical = self.optimizer.scale_loss(step.empirical)
                scaled_regularization = self.optimizer.scale_loss(regularization)
        variables = self.trainable_variables
        terms, stats = step.terms, None
        if rule is None:
            gradients = tape.gradient(scaled_total, variables)
        else:
            # Both scaled by the same factor: DTNH's projection is scale-equivariant.
            loss_gradients = _zeros_for_none(tape.gradient(scaled_empirical, variables), variables)
            if forward_regs:
                reg_gradients = _zeros_for_none(tape.gradient(scaled_regularization, variables), variables)
            else:
                reg_gradients = [tf.zeros_like(g) for g in loss_gradients]
            if weight_regs:
                with tf.GradientTape() as weight_tape:
                    weight_terms = objective.weight_terms(weight_regs)
                    scaled_weight = self.optimizer.scale_loss(_sum(weight_terms) / replicas)
                weight_gradients = _zeros_for_none(weight_tape.gradient(scaled_weight, variables), variables)
                reg_gradients = [r + w for r, w in zip(reg_gradients, weight_gradients, strict=True)]
                merged = {**terms, **weight_terms}
                terms = {r.name: merged[r.name] for r in objective.active}
            if replicas > 1:
                context = tf.distribute.get_replica_context()
                loss_gradients, reg_gradients = context.all_reduce(
                    tf.distribute.ReduceOp.SUM, (loss_gradients, reg_gradients)
                )
            gradients, stats = rule.combine(loss_gradients, reg_gradients)
            if replicas > 1:
                gradients = [g / replicas for g in gradients]
        del tape
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        logged = _logged(terms, objective.active, replicas)
        return objective.logs(x, y, step.logits, sample_weight, step.empirical * replicas, logged, stats)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        objective = self.objective
        step = objective.forward(x, y, sample_weight, False, objective.active)
        _build_state_outside_trace(self, y, step.logits, optimizer=False)
        terms = _logged(step.terms, objective.active, _replicas())
        return objective.logs(x, y, step.logits, sample_weight, step.empirical * _replicas(), terms)


def compile_function(fn):
    """`fn` (keras.ops on tensors) traced into one graph: callbacks' per-step math, outside `train_step`."""
    return tf.function(fn, reduce_retracing=True)


def loss_gradients(model, x, y, sample_weight=None):
    """∇ of `model`'s compiled loss (times its optimizer's loss scale) on one batch, in training mode.

    The data pass of `keras_tl.callbacks.AutoRGNScales`; like a train step's forward pass, it
    updates BatchNorm's moving statistics.
    """
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
    return _zeros_for_none(tape.gradient(loss, variables), variables)
