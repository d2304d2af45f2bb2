"""Auto-RGN: surgical fine-tuning's per-layer learning rates, scaled by each layer's relative gradient norm."""

import numpy as np
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.optimizers.base import OptimizerWrapper, check_patterns, matches, read


def auto_rgn_scales(gradient_norms, weight_norms):
    """Auto-RGN's learning-rate scale of each variable from its gradient and weight norms.

    RGN_l = mean over batches of ‖g_l‖ / ‖θ_l‖; scale_l = RGN_l / max_l RGN_l.

    Args:
        gradient_norms: array `(batches, variables)`, ‖g_l‖ of each batch's gradient.
        weight_norms: array `(variables,)`, ‖θ_l‖ at the point the gradients were taken.

    Returns:
        A float32 array `(variables,)` in [0, 1]. A variable with ‖θ_l‖ = 0 (a zero-initialised
        bias: the official code divides by zero there) gets 1 and is left out of the maximum;
        if every RGN is 0 every scale is 1.
    """
    gradient_norms = np.asarray(gradient_norms, dtype="float64")
    weight_norms = np.asarray(weight_norms, dtype="float64")
    if (
        gradient_norms.ndim != 2
        or gradient_norms.shape[0] == 0
        or gradient_norms.shape[1:] != weight_norms.shape
    ):
        raise ValueError(
            "Expected gradient_norms of shape (batches >= 1, variables) and weight_norms of shape (variables,). "
            f"Received: gradient_norms.shape={gradient_norms.shape}, weight_norms.shape={weight_norms.shape}"
        )
    nonzero = weight_norms > 0
    rgn = np.mean(gradient_norms[:, nonzero] / weight_norms[nonzero], axis=0)
    scales = np.ones(weight_norms.shape)
    top = rgn.max() if rgn.size else 0.0
    if top > 0:
        scales[nonzero] = rgn / top
    return scales.astype("float32")


@keras_tl_export("keras_tl.optimizers.AutoRGN")
class AutoRGN(OptimizerWrapper):
    """Surgical fine-tuning by Auto-RGN: each variable's step is scaled by its relative gradient norm.

    With scale_l = RGN_l / max_l RGN_l and RGN_l = ‖g_l‖ / ‖θ_l‖ (see `auto_rgn_scales`),
    each step is

        θ_t = θ_{t−1} + scale_l · (θ̃_t − θ_{t−1}),

    θ̃_t the inner optimizer's step: for SGD (with momentum) and Adam, whose step is
    proportional to the learning rate, this is the inner optimizer run with learning rate
    scale_l · lr on variable l, the official per-parameter-group learning rates. The
    scales are optimizer variables, refreshed by `keras_tl.callbacks.AutoRGNScales` at the
    start of every epoch from a few batches; until the first refresh every scale is 1.

    Reference:
        Lee et al., "Surgical Fine-Tuning Improves Adaptation to Distribution Shifts",
        ICLR 2023 (Sec. 5, Auto-RGN).

    Conventions, from the official code (anniesch/surgical-finetuning, `main.py`,
    `get_lr_weights` and the `auto_tune == 'RGN'` branch of `main`):
    - One RGN per variable tensor (weight and bias separately), Euclidean norms of the whole
      tensor: `torch.norm(grad) / torch.norm(param)`, each batch's ratio averaged over the
      first 5 batches of the (shuffled) training loader, cross-entropy gradients in training
      mode, at the weights the epoch starts from.
    - Normalised by the maximum over the ranked variables; learning rate scale_l · lr.
    - Parameters whose name contains "bn" are neither ranked nor given to the optimizer it
      rebuilds each epoch, so they are not trained: here `frozen` patterns (scale 0); for
      this library's backbones `frozen=("_bn/",)` reproduces it.
    - Refreshed at the start of every epoch, before its first step.
    - Departure: the official code builds a new Adam every epoch (its moments and step count
      restart); here the inner optimizer's state carries over, since restarting Keras'
      `iterations` would also restart the learning-rate schedule.

    State (optimizer variables, saved in checkpoints): one scale per variable.

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` whose steps are scaled (Adam in the
            paper's experiments, with learning rate and weight decay chosen on validation).
        frozen: regular expressions; variables whose path matches one are not updated and
            not ranked.
        name: the optimizer's name.

    Example:
    >>> optimizer = keras_tl.optimizers.AutoRGN(keras.optimizers.Adam(1e-3), frozen=("_bn/",))
    >>> model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> model.fit(train_ds, epochs=10, callbacks=[keras_tl.callbacks.AutoRGNScales(train_ds)])
    """

    needs_previous_values = True

    def __init__(self, inner_optimizer, frozen=(), name=None, **kwargs):
        super().__init__(inner_optimizer, name=name, **kwargs)
        self.frozen = check_patterns("frozen", frozen)

    def selects(self, variable):
        return True  # frozen variables are selected too: their scale 0 undoes the inner step

    def ranks(self, variable):
        """Whether `variable` enters the RGN ranking (it is not frozen)."""
        return not matches(self.frozen, variable)

    def build_state(self, var_list):
        initial = np.array([1.0 if self.ranks(v) else 0.0 for v in var_list], dtype="float32")
        self._scales = self.add_variable(
            (len(var_list),),
            initializer=lambda shape, dtype=None: ops.cast(initial, dtype),
            name="rgn_scales",
        )

    @property
    def scales(self):
        """The scale of each variable, in the order of the variables the optimizer was built with."""
        return self._scales

    def set_scales(self, variables, gradient_norms, weight_norms):
        """Sets the scales from ‖g_l‖ per batch `(batches, len(variables))` and ‖θ_l‖ `(len(variables),)`.

        `variables` are the optimizer's variables (any order); frozen ones are ignored and keep 0.
        Returns the scales in the order of `variables`.
        """
        if not self.built:
            raise ValueError(
                "Expected a built AutoRGN. Call optimizer.build(model.trainable_variables) first."
            )
        positions = [self._positions.get(id(v)) for v in variables]
        if None in positions or sorted(positions) != list(range(len(self._positions))):
            raise ValueError(
                "Expected exactly the variables the optimizer was built with. Received: "
                f"{len(variables)} variables, {positions.count(None)} unknown to it, for {len(self._positions)} built"
            )
        ranked = [i for i, v in enumerate(variables) if self.ranks(v)]
        scales = np.zeros(len(variables), dtype="float32")
        if ranked:
            norms = np.asarray(gradient_norms, dtype="float64")
            scales[ranked] = auto_rgn_scales(norms[:, ranked], np.asarray(weight_norms)[ranked])
        ordered = np.zeros(len(variables), dtype="float32")
        ordered[positions] = scales
        self._scales.assign(ordered)
        return scales

    def update(self, entries):
        for position, _, variable, previous in entries:
            scale = ops.cast(self._scales[position], previous.dtype)
            variable.assign(previous + scale * (read(variable) - previous))

    def get_config(self):
        return {**super().get_config(), "frozen": list(self.frozen)}
