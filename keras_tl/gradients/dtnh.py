"""DTNH: a descent direction that keeps the regularizer from fighting the empirical loss."""

import math

from keras import ops

from keras_tl.api_export import keras_tl_export

GRANULARITIES = ("global", "per_variable")
# Keys of the diagnostics `DTNH` logs (Sec. V-D of the paper); angles are in degrees.
STAT_NAMES = (
    "projected",
    "angle_d_loss",
    "angle_d_reg",
    "angle_sum_loss",
    "angle_sum_reg",
)


def _dot(a, b):
    return ops.sum(ops.multiply(ops.cast(a, "float32"), ops.cast(b, "float32")))


def _global_dot(xs, ys):
    total = ops.zeros((), dtype="float32")
    for x, y in zip(xs, ys, strict=True):
        total = total + _dot(x, y)
    return total


def _project(loss_grad, reg_grad, inner, loss_norm_sq, reg_weight):
    """Eq. 6-7 for one block: ∇J + λ(∇Ω − [⟨∇J,∇Ω⟩ < 0]·⟨∇J,∇Ω⟩/‖∇J‖²·∇J)."""
    obtuse = ops.less(inner, 0.0)
    # ⟨∇J,∇Ω⟩ < 0 implies ‖∇J‖² > 0, so the division only needs guarding where it is unused.
    safe_norm_sq = ops.where(obtuse, loss_norm_sq, ops.ones_like(loss_norm_sq))
    coefficient = ops.where(obtuse, inner / safe_norm_sq, ops.zeros_like(inner))
    coefficient = ops.cast(coefficient, loss_grad.dtype)
    reg_orthogonal = reg_grad - coefficient * loss_grad
    return loss_grad + reg_weight * reg_orthogonal, ops.cast(obtuse, "float32")


def dtnh(loss_grads, reg_grads, reg_weight=1.0, granularity="global"):
    """DTNH descent direction (Algorithm 1) from the two gradients of one step.

    d = ∇J + λ∇Ω                                  if ⟨∇J, ∇Ω⟩ ≥ 0
    d = ∇J + λ(∇Ω − ⟨∇J,∇Ω⟩ / ‖∇J‖² · ∇J)        otherwise   (Eq. 6-7: ∇Ω^y = ∇Ω − ∇Ω^x)

    The regularizer gradient loses only its component that points against the empirical
    loss gradient. Inner products run over all variables at once (`"global"`, the paper's
    single parameter vector ω) or over each variable separately (`"per_variable"`). A zero
    ∇J gives ⟨∇J,∇Ω⟩ = 0, the acute branch, so no division by zero and no NaN.

    Like an optax transformation this is a pure function of lists of tensors; `DTNH` plugs
    it into `TransferModel`'s train step, where momentum/Adam act on the returned direction.

    Reference:
        Wan et al., "Towards Making Deep Transfer Learning Never Hurt", Sec. IV-B,
        Algorithm 1, Eq. 6-7.

    Args:
        loss_grads: list of tensors, ∇J per variable.
        reg_grads: list of tensors, ∇Ω per variable (same order and shapes).
        reg_weight: λ; 1 when the regularizer gradient already includes its coefficient.
        granularity: `"global"` or `"per_variable"`.

    Returns:
        `(directions, projected)`: the list of corrected gradients and the fraction (a
        float32 scalar) of inner products that were obtuse and projected.

    Example:
    >>> d, projected = keras_tl.gradients.dtnh([np.array([1., 0.])], [np.array([-1., 1.])])
    >>> d  # [array([1., 1.])]: the component of ∇Ω opposite to ∇J was removed
    """
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"Expected granularity to be one of {GRANULARITIES}. Received: granularity={granularity!r}"
        )
    if len(loss_grads) != len(reg_grads):
        raise ValueError(
            "Expected as many regularizer gradients as loss gradients. Received: "
            f"len(loss_grads)={len(loss_grads)}, len(reg_grads)={len(reg_grads)}"
        )
    loss_grads = [ops.convert_to_tensor(g) for g in loss_grads]
    reg_grads = [ops.convert_to_tensor(g) for g in reg_grads]
    if not loss_grads:
        return [], ops.zeros((), dtype="float32")
    if granularity == "global":
        inner = _global_dot(loss_grads, reg_grads)
        loss_norm_sq = _global_dot(loss_grads, loss_grads)
        results = [_project(j, r, inner, loss_norm_sq, reg_weight) for j, r in zip(loss_grads, reg_grads)]
        return [d for d, _ in results], results[0][1]
    results = [
        _project(j, r, _dot(j, r), _dot(j, j), reg_weight) for j, r in zip(loss_grads, reg_grads)
    ]
    projected = ops.mean(ops.stack([p for _, p in results]))
    return [d for d, _ in results], projected


def angle_degrees(xs, ys):
    """The angle between two gradient lists seen as single vectors, in degrees (0 if either is 0)."""
    norms = ops.sqrt(_global_dot(xs, xs) * _global_dot(ys, ys))
    cosine = _global_dot(xs, ys) / ops.maximum(norms, 1e-30)
    cosine = ops.where(norms > 0.0, cosine, ops.ones_like(cosine))
    return ops.arccos(ops.clip(cosine, -1.0, 1.0)) * (180.0 / math.pi)


@keras_tl_export("keras_tl.gradients.DTNH")
class DTNH:
    """Gradient rule for `TransferModel`: combines ∇J and ∇Ω with `dtnh` and logs diagnostics.

    With a gradient rule, the train step differentiates the empirical loss J and the sum of
    the regularization terms Ω separately from one shared forward pass, and the optimizer
    receives `dtnh(∇J, ∇Ω)`. The logged metrics (means over the epoch) are
    `dtnh/projected` (fraction of steps, or of variables with `"per_variable"`, whose
    inner product was obtuse) and the four angles of Sec. V-D, in degrees:
    `dtnh/angle_d_loss` (Angle 1: d vs ∇J), `dtnh/angle_d_reg` (Angle 2: d vs ∇Ω),
    `dtnh/angle_sum_loss` (Angle 3: ∇J+λ∇Ω vs ∇J), `dtnh/angle_sum_reg` (Angle 4:
    ∇J+λ∇Ω vs ∇Ω).

    Reference:
        Wan et al., "Towards Making Deep Transfer Learning Never Hurt", Algorithm 1,
        Eq. 6-7, Sec. V-D.

    Args:
        reg_weight: λ multiplying ∇Ω (default 1: the regularizers carry their coefficients).
        granularity: `"global"` (the paper) or `"per_variable"`.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10,
    ...     regularizers=[keras_tl.regularizers.L2SP(alpha=0.1)],
    ...     gradient_rule=keras_tl.gradients.DTNH())
    """

    def __init__(self, reg_weight=1.0, granularity="global"):
        if isinstance(reg_weight, bool) or not isinstance(reg_weight, (int, float)) or reg_weight < 0:
            raise ValueError(f"Expected reg_weight >= 0 (a float). Received: reg_weight={reg_weight!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(
                f"Expected granularity to be one of {GRANULARITIES}. Received: granularity={granularity!r}"
            )
        self.reg_weight = float(reg_weight)
        self.granularity = granularity

    stat_names = STAT_NAMES

    def __call__(self, loss_grads, reg_grads):
        """Returns `(directions, stats)`, stats a dict keyed by `STAT_NAMES`."""
        directions, projected = dtnh(loss_grads, reg_grads, self.reg_weight, self.granularity)
        plain = [j + self.reg_weight * r for j, r in zip(loss_grads, reg_grads)]
        stats = {
            "projected": projected,
            "angle_d_loss": angle_degrees(directions, loss_grads),
            "angle_d_reg": angle_degrees(directions, reg_grads),
            "angle_sum_loss": angle_degrees(plain, loss_grads),
            "angle_sum_reg": angle_degrees(plain, reg_grads),
        }
        return directions, stats

    def get_config(self):
        return {"reg_weight": self.reg_weight, "granularity": self.granularity}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
