"""SPD: selective projection decay, a pull towards the anchor applied only to layers whose step is inconsistent."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.optimizers.base import AnchoredWrapper, read
from keras_tl.utils.validation import check_number


def _norm(value):
    return ops.sqrt(ops.sum(ops.square(value)))


def spd_step(gradient, previous, proposed, anchor, strength):
    """θ_t from θ_{t−1} (`previous`), the inner step's θ̃_t (`proposed`), g_t and θ0, for one variable.

    Returns `(θ_t, decayed)`, `decayed` a boolean scalar: whether the condition held.
    """
    condition = -ops.sum(ops.multiply(gradient, previous - anchor))
    offset = proposed - anchor
    new_norm, old_norm = _norm(offset), _norm(previous - anchor)
    # ‖θ̃ − θ0‖ = 0 makes the growth ratio 0/0 in the official code; no growth, no decay here.
    safe = ops.where(new_norm > 0, new_norm, ops.ones_like(new_norm))
    ratio = ops.clip((new_norm - old_norm) / safe, 0.0, 1.0)
    decayed = condition < 0
    return ops.where(decayed, proposed - strength * ratio * offset, proposed), decayed


@keras_tl_export("keras_tl.optimizers.SPD")
class SPD(AnchoredWrapper):
    """Selective Projection Decay: decays a layer towards its anchor θ0 only where its step is inconsistent.

    After the inner optimizer's step θ_{t−1} → θ̃_t, per variable l:

        c_t = −⟨g_t, θ_{t−1} − θ0⟩,
        r_t = clip((‖θ̃_t − θ0‖ − ‖θ_{t−1} − θ0‖) / ‖θ̃_t − θ0‖, 0, 1),
        θ_t = θ̃_t − λ · r_t · (θ̃_t − θ0)   where c_t < 0, else θ̃_t.

    c_t < 0 when the gradient points back towards θ0 (descending it would shrink the
    deviation) while r_t > 0 only when the inner step (momentum, adaptive scaling) still
    grew it: the layer's loss reduction is inconsistent with its progress, and the decay
    removes the fraction λ·r_t of the deviation. λ = 1 projects the deviation back to its
    previous norm, ‖θ_t − θ0‖ = ‖θ_{t−1} − θ0‖ (the "projection" view); λ is not multiplied
    by the learning rate.

    Reference:
        Tian, Huang and Kira, "Rethinking Weight Decay for Robust Fine-Tuning of Foundation
        Models", NeurIPS 2024 (Sec. 3, Algorithm 1, Adam-SPD).

    Conventions, from the official code (GT-RIPL/Selective-Projection-Decay, `adamSPD.py`,
    `AdamSPD.adam` and `_ratio`; read in its verbatim copy ShiromiyaG/codename-rvc-fork-4
    `rvc/train/custom_optimizers/adamspd/adamSPD.py`, the official repository's file not
    being in the search index):
    - Per variable tensor, Euclidean (Frobenius) norms over the whole tensor (`torch.norm`).
    - g_t is the raw gradient (`param.grad`); the condition uses θ_{t−1}, the ratio θ̃_t.
    - Every trainable variable is decayed (the README passes all parameters, the new head
      included, whose anchor is its initialisation); `exclude` can leave some out.
    - At the first step θ_{t−1} = θ0, so c_t = 0 and nothing is decayed.
    - λ is the official `weight_decay` argument (class default 0, i.e. off; the paper tunes
      it per task); the inner optimizer keeps its own decoupled weight decay, which the
      official Adam-SPD does not apply.
    - Departure: where ‖θ̃_t − θ0‖ = 0 the official ratio is 0/0 (NaN); here it is 0.

    State (optimizer variables, saved in checkpoints): θ0 per decayed variable.

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` whose steps are decayed (Adam in the
            paper; `keras.optimizers.SGD(schedule, momentum=0.9)` works the same way).
        strength: λ >= 0; 1 keeps the deviation's norm where the condition holds.
        exclude: regular expressions; variables whose path matches one are not decayed.
        anchors: `None` (θ0 = the values when the optimizer is built) or `{path: array}`.
        name: the optimizer's name.

    Example:
    >>> optimizer = keras_tl.optimizers.SPD(keras.optimizers.Adam(1e-4), strength=1.0)
    >>> model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """

    needs_previous_values = True

    def __init__(self, inner_optimizer, strength=1.0, exclude=(), anchors=None, name=None, **kwargs):
        super().__init__(inner_optimizer, exclude=exclude, anchors=anchors, name=name, **kwargs)
        self.strength = check_number("strength", strength, minimum=0)

    def build_state(self, var_list):
        self.add_anchors(var_list)

    def update(self, entries):
        for position, gradient, variable, previous in entries:
            anchor = self._anchors[position]
            value, _ = spd_step(gradient, previous, read(variable), anchor, self.strength)
            variable.assign(value)

    def get_config(self):
        return {**super().get_config(), "strength": self.strength}
