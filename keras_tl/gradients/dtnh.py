"""DTNH: a descent direction that keeps the regularizer from fighting the empirical loss."""

import math

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.gradients.base import GradientRule
from keras_tl.utils.validation import check_number

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


def _per_variable_dots(loss_grads, reg_grads):
    """⟨∇J,∇J⟩, ⟨∇Ω,∇Ω⟩ and ⟨∇J,∇Ω⟩ per variable: everything DTNH needs, in three reductions each."""
    pairs = list(zip(loss_grads, reg_grads, strict=True))
    return (
        ops.stack([_dot(j, j) for j, _ in pairs]),
        ops.stack([_dot(r, r) for _, r in pairs]),
        ops.stack([_dot(j, r) for j, r in pairs]),
    )


def _loss_coefficients(jj, jr, reg_weight, granularity):
    """`a` with d_v = a_v·∇J_v + λ·∇Ω_v (Eq. 6-7: a = 1 − λ·[⟨∇J,∇Ω⟩ < 0]·⟨∇J,∇Ω⟩/‖∇J‖²)."""
    if granularity == "global":
        inner, norm_sq = ops.sum(jr), ops.sum(jj)
    else:
        inner, norm_sq = jr, jj
    obtuse = ops.less(inner, 0.0)
    # ⟨∇J,∇Ω⟩ < 0 implies ‖∇J‖² > 0, so the division only needs guarding where it is unused.
    safe_norm_sq = ops.where(obtuse, norm_sq, ops.ones_like(norm_sq))
    coefficient = ops.where(obtuse, inner / safe_norm_sq, ops.zeros_like(inner))
    a = ops.ones_like(jj) - reg_weight * coefficient
    return a, ops.mean(ops.cast(obtuse, "float32"))


def _combine(loss_grads, reg_grads, jj, jr, reg_weight, granularity):
    a, projected = _loss_coefficients(jj, jr, reg_weight, granularity)
    directions = [
        ops.cast(a[i], j.dtype) * j + reg_weight * r for i, (j, r) in enumerate(zip(loss_grads, reg_grads, strict=True))
    ]
    return directions, projected, a


def _check(loss_grads, reg_grads, granularity):
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"Expected granularity to be one of {GRANULARITIES}. Received: granularity={granularity!r}"
        )
    if len(loss_grads) != len(reg_grads):
        raise ValueError(
            "Expected as many regularizer gradients as loss gradients. Received: "
            f"len(loss_grads)={len(loss_grads)}, len(reg_grads)={len(reg_grads)}"
        )
    return [ops.convert_to_tensor(g) for g in loss_grads], [ops.convert_to_tensor(g) for g in reg_grads]


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
    loss_grads, reg_grads = _check(loss_grads, reg_grads, granularity)
    if not loss_grads:
        return [], ops.zeros((), dtype="float32")
    jj, _, jr = _per_variable_dots(loss_grads, reg_grads)
    directions, projected, _ = _combine(loss_grads, reg_grads, jj, jr, reg_weight, granularity)
    return directions, projected


def _angle(inner, norm_sq_x, norm_sq_y):
    norms = ops.sqrt(norm_sq_x * norm_sq_y)
    cosine = ops.where(norms > 0.0, inner / ops.maximum(norms, 1e-30), ops.ones_like(inner))
    return ops.arccos(ops.clip(cosine, -1.0, 1.0)) * (180.0 / math.pi)


def angle_degrees(xs, ys):
    """The angle between two gradient lists seen as single vectors, in degrees (0 if either is 0)."""
    xx, yy, xy = (ops.sum(v) for v in _per_variable_dots(xs, ys))
    return _angle(xy, xx, yy)


def _section_v_d_angles(a, jj, rr, jr, reg_weight):
    """The four angles of Sec. V-D for d = a·∇J + λ∇Ω (a = 1: the plain sum), from the dots alone."""
    lam = reg_weight
    total_jj, total_rr, total_jr = ops.sum(jj), ops.sum(rr), ops.sum(jr)

    def angles(a):
        d_j = ops.sum(a * jj) + lam * total_jr
        d_r = ops.sum(a * jr) + lam * total_rr
        d_d = ops.sum(a * a * jj) + 2.0 * lam * ops.sum(a * jr) + lam * lam * total_rr
        return _angle(d_j, d_d, total_jj), _angle(d_r, d_d, total_rr)

    d_loss, d_reg = angles(a)
    sum_loss, sum_reg = angles(ops.ones_like(a))
    return {"angle_d_loss": d_loss, "angle_d_reg": d_reg, "angle_sum_loss": sum_loss, "angle_sum_reg": sum_reg}


@keras_tl_export("keras_tl.gradients.DTNH")
class DTNH(GradientRule):
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
        reg_weight = check_number("reg_weight", reg_weight, minimum=0)
        if granularity not in GRANULARITIES:
            raise ValueError(
                f"Expected granularity to be one of {GRANULARITIES}. Received: granularity={granularity!r}"
            )
        self.reg_weight = float(reg_weight)
        self.granularity = granularity

    name = "dtnh"
    stat_names = STAT_NAMES

    def combine(self, loss_grads, reg_grads):
        """Returns `(directions, stats)`, stats a dict keyed by `STAT_NAMES`."""
        loss_grads, reg_grads = _check(loss_grads, reg_grads, self.granularity)
        jj, rr, jr = _per_variable_dots(loss_grads, reg_grads)
        directions, projected, a = _combine(loss_grads, reg_grads, jj, jr, self.reg_weight, self.granularity)
        stats = {"projected": projected, **_section_v_d_angles(a, jj, rr, jr, self.reg_weight)}
        return directions, stats

    def get_config(self):
        return {"reg_weight": self.reg_weight, "granularity": self.granularity}
