"""FTP: fast trainable projection, a per-layer distance constraint learned from the training gradients."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.optimizers.base import AnchoredWrapper, read
from keras_tl.utils.validation import check_number

# The official code's constants (GT-RIPL/FTP, util/FTP.py, class FTP): the Adam that updates
# γ, the floor of γ and of the norms, and γ at the first step.
GAMMA_BETA_1 = 0.9
GAMMA_BETA_2 = 0.999
GAMMA_EPSILON = 1e-8
FLOOR = 1e-8


def _row_axes(value):
    """Axes of the per-output-unit norm: all but the last for a kernel, all for a vector.

    PyTorch keeps a layer's output units first (`Linear` (out, in), `Conv2d` (out, in, kh, kw))
    and the official code reduces `dim=range(1, ndim)`; Keras keeps them last (`Dense`
    (in, out), `Conv2D` (kh, kw, in, out)). For a 1-D tensor the official `dim=()` reduces
    every dimension (PyTorch's `sum(dim=())` is a full reduction): one norm per bias or
    BatchNorm vector.
    """
    return tuple(range(len(value.shape) - 1)) if len(value.shape) >= 2 else None


def mars_norm(value):
    """Σ|value| per output unit, plus 1e-8 (official `_mars_norm`), kept broadcastable to `value`."""
    return ops.sum(ops.abs(value), axis=_row_axes(value), keepdims=True) + FLOOR


@keras_tl_export("keras_tl.optimizers.FTP")
class FTP(AnchoredWrapper):
    """Fast Trainable Projection: each layer stays within a learned distance γ_l of its anchor θ0.

    After the inner optimizer's step θ_{t−1} → θ̃_t, with c_t = θ̃_t − θ0 per variable l:

        θ_t = θ0 + min(1, γ_{l,t} / ‖c_t‖) · c_t,

    where ‖·‖ is the MARS norm Σ|·| per output unit (so the ratio is per unit) and the
    scalar γ_l follows Adam (learning rate `gamma_learning_rate`, β = 0.9, 0.999) on the
    hypergradient of the loss with respect to γ through the previous projection,

        ∂L_t/∂γ_l = Σ_units ⟨∇L_t(θ_{t−1}), c_{t−1}⟩ / ‖c_{t−1}‖,

    multiplied by `k` when positive (k < 1 slows the shrinking of γ), then clipped to
    [1e-8, max_units ‖c_t‖]. No extra data and no extra forward pass: ∇L_t is the gradient
    the optimizer receives.

    Reference:
        Tian et al., "Fast Trainable Projection for Robust Fine-Tuning", NeurIPS 2023
        (Algorithm 1, projection and γ update; Algorithm 2, SGDP).

    Conventions, from the official code (GT-RIPL/FTP, `util/FTP.py`, class `FTP.step` and
    `SGDP.step`; `main_finetune.py` for the defaults):
    - One γ per variable tensor (weight and bias separately); the norm, the ratio and the
      hypergradient's normalisation are per output unit (`_mars_norm`, `_dot` over
      `dim=1..`), see `mars_norm`; the hypergradient sums the units.
    - First step: γ = 1e-8, so θ_1 ≈ θ0 (the inner optimizer's state, e.g. momentum, still
      accumulates); γ's Adam starts at the second step with bias correction 1 − β^t, t the
      optimizer step (t = 2 there), eps 1e-8 outside the square root (`_adam_util`).
    - ∇L_t is the raw gradient (`p.grad`), not the inner optimizer's update; c_t is taken
      after the inner optimizer's full update (`c_t = (curr - d_p) - pre`, `d_p` = lr ·
      momentum buffer), so weight decay set on the inner optimizer is inside it.
    - Excluded variables take the inner step unchanged; the official run excludes the new
      head (`exclude_set={'module.head.weight', 'module.head.bias'}`) and uses k = 1 with
      SGD (momentum 0.9, Nesterov, no weight decay).
    - Departure: the previous 1/‖c_{t−1}‖ is recomputed from c_{t−1} instead of being
      stored (the same number).

    State (optimizer variables, saved in checkpoints): θ0 and c_{t−1} per projected
    variable, γ and its two Adam moments per projected variable, the step count.

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` whose steps are projected, e.g.
            `keras.optimizers.SGD(schedule, momentum=0.9)`.
        k: factor on a positive hypergradient, in [0, 1]; 1 (official default) leaves it.
        gamma_learning_rate: learning rate of γ's Adam (official `mu = 1e-2`).
        exclude: regular expressions; variables whose path matches one are not projected
            (for a `keras_tl.TransferModel`'s new head: `("^head/",)`).
        anchors: `None` (θ0 = the values when the optimizer is built) or `{path: array}`.
        name: the optimizer's name.

    Example:
    >>> optimizer = keras_tl.optimizers.FTP(keras.optimizers.SGD(0.01, momentum=0.9), exclude=("^head/",))
    >>> model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """

    def __init__(
        self, inner_optimizer, k=1.0, gamma_learning_rate=1e-2, exclude=(), anchors=None, name=None, **kwargs
    ):
        super().__init__(inner_optimizer, exclude=exclude, anchors=anchors, name=name, **kwargs)
        self.k = check_number("k", k, minimum=0)
        if self.k > 1:
            raise ValueError(f"Expected 0 <= k <= 1 (a float). Received: k={k!r}")
        self.gamma_learning_rate = check_number(
            "gamma_learning_rate", gamma_learning_rate, minimum=0, exclusive=True
        )

    def build_state(self, var_list):
        self.add_anchors(var_list)
        self._offsets = [
            self.add_variable_from_reference(v, name="previous_offset") if s else None
            for v, s in zip(var_list, self._selected, strict=True)
        ]
        # Position of each projected variable in the γ vectors.
        self._slots = {i: n for n, i in enumerate(i for i, s in enumerate(self._selected) if s)}
        count = len(self._slots)
        self._gamma = self.add_variable(
            (count,), initializer=lambda shape, dtype=None: ops.full(shape, FLOOR, dtype), name="ftp_gamma"
        )
        self._gamma_m = self.add_variable((count,), name="ftp_gamma_m")
        self._gamma_v = self.add_variable((count,), name="ftp_gamma_v")
        self._steps = self.add_variable((), dtype="int32", name="ftp_steps")

    @property
    def gamma(self):
        """γ of each projected variable (the excluded have none), in the order the optimizer was built with."""
        return self._gamma

    def update(self, entries):
        t = ops.cast(self._steps + 1, "float32")
        gammas = [self._gamma[n] for n in range(len(self._slots))]
        firsts = [self._gamma_m[n] for n in range(len(self._slots))]
        seconds = [self._gamma_v[n] for n in range(len(self._slots))]
        for position, gradient, variable, _ in entries:
            n = self._slots[position]
            anchor, previous = self._anchors[position], self._offsets[position]
            offset = read(variable) - anchor
            norms = mars_norm(offset)
            # At the first step c_{t−1} = 0: a zero hypergradient leaves γ at 1e-8, as the official branch.
            rows = ops.sum(ops.multiply(gradient, previous), axis=_row_axes(previous), keepdims=True)
            hyper = ops.cast(ops.sum(rows / mars_norm(previous)), "float32")
            hyper = ops.where(hyper > 0, self.k * hyper, hyper)
            first = GAMMA_BETA_1 * firsts[n] + (1 - GAMMA_BETA_1) * hyper
            second = GAMMA_BETA_2 * seconds[n] + (1 - GAMMA_BETA_2) * ops.square(hyper)
            corrected_first = first / (1 - ops.power(GAMMA_BETA_1, t))
            corrected_second = second / (1 - ops.power(GAMMA_BETA_2, t))
            gamma = gammas[n] - self.gamma_learning_rate * corrected_first / (
                ops.sqrt(corrected_second) + GAMMA_EPSILON
            )
            gamma = ops.clip(gamma, FLOOR, ops.cast(ops.max(norms), "float32"))
            ratio = ops.clip(ops.cast(gamma, offset.dtype) / norms, 0.0, 1.0)
            variable.assign(anchor + ratio * offset)
            previous.assign(offset)
            gammas[n], firsts[n], seconds[n] = gamma, first, second
        if gammas:
            self._gamma.assign(ops.stack(gammas))
            self._gamma_m.assign(ops.stack(firsts))
            self._gamma_v.assign(ops.stack(seconds))
        self._steps.assign_add(1)

    def get_config(self):
        return {**super().get_config(), "k": self.k, "gamma_learning_rate": self.gamma_learning_rate}
