"""Projection onto a ball around the anchor weights: the rule shared by TPGM (and FTP).

Pure functions of tensors (`keras.ops`), like optax's transformations: `project` maps one
variable's value θ to θ0 + r·(θ − θ0) with r = min(1, γ / ‖θ − θ0‖), row by row under the
MARS norm. `keras_tl.callbacks.TPGM` learns γ on held-out data and calls them after every
step; an optimizer that learns γ from its own gradients (FTP) can call them as well.
"""

from keras import ops

from keras_tl.api_export import keras_tl_export

NORMS = ("mars", "l2")
# Added to the norm before dividing, as `utils/tpgm.py` does (`norms + 1e-8`).
EPSILON = 1e-8
# The smallest radius `clip_radius` leaves (`_clip`: a non-positive constraint becomes 1e-8).
MIN_RADIUS = 1e-8


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"Expected norm to be one of {NORMS}. Received: norm={norm!r}")
    return norm


@keras_tl_export("keras_tl.projection.distance_norms")
def distance_norms(delta, norm="mars"):
    """The norm(s) of `delta` = θ − θ0 that the radius bounds, shaped to broadcast against it.

    - `"mars"`: the maximum-absolute-row-sum norm's rows. For a kernel (rank >= 2) each
      output unit's row is the absolute sum over every axis but the last (Keras puts the
      output units last: Dense `(in, out)`, Conv2D `(kh, kw, in, out)`), shape
      `(1, ..., 1, out)`; for a vector (bias, BatchNorm γ/β) each entry is its own row, |Δ|.
      The radius bounds the largest row sum, so each row is scaled on its own.
    - `"l2"`: the Frobenius norm of the whole tensor, a scalar.

    Reference:
        Tian et al., "Trainable Projected Gradient Method for Robust Fine-tuning",
        CVPR 2023, Sec. 3 (the MARS norm for convolutional networks).

    Conventions (PotatoTian/TPGM, `DomainNet_ResNet_Exp/utils/tpgm.py::_project_ratio`):
    PyTorch kernels put the output units first and sum `|t|` over dims `[1, 2, 3]` (conv)
    or `1` (linear); the same rows are Keras' last axis. Tensors of another rank fall in
    that file's elementwise branch; we sum over all axes but the output one for any
    kernel, as the ViT version of the file (`ImageNet_ViT_Exp/utils/tpgm.py`) does.

    Example:
    >>> keras_tl.projection.distance_norms(kernel - anchor)  # (1, 1, 1, out) for a conv kernel
    """
    check_norm(norm)
    if norm == "l2":
        return ops.sqrt(ops.sum(ops.square(delta)))
    if len(delta.shape) <= 1:
        return ops.abs(delta)
    return ops.sum(ops.abs(delta), axis=tuple(range(len(delta.shape) - 1)), keepdims=True)


@keras_tl_export("keras_tl.projection.projection_ratio")
def projection_ratio(radius, norms):
    """r = min(1, max(γ, 0) / (‖θ − θ0‖ + 1e-8)), per row: how much of θ − θ0 stays.

    A row inside the ball keeps r = 1 and passes no gradient to γ (`Hardtanh(0, 1)` in
    `utils/tpgm.py`: its derivative is 0 at and beyond the bounds); a row outside gets
    r = γ/‖·‖, whose derivative in γ is 1/‖·‖.
    """
    ratio = ops.relu(radius) / (norms + EPSILON)
    return ops.where(ratio < 1.0, ratio, ops.ones_like(ratio))


@keras_tl_export("keras_tl.projection.project")
def project(theta, anchor, radius, norm="mars"):
    """θ̃ = θ0 + min(1, γ / ‖θ − θ0‖)·(θ − θ0): θ pulled back into the ball of radius γ around θ0.

    Differentiable in `radius` (TPGM learns γ through it) and constant in θ, θ0: the norms
    and θ − θ0 are held fixed, as the reference code detaches them.

    Reference:
        Tian et al., "Trainable Projected Gradient Method for Robust Fine-tuning",
        CVPR 2023, Sec. 3 (the projection Π(θ, θ0, γ)); PotatoTian/TPGM,
        `DomainNet_ResNet_Exp/utils/tpgm.py::apply_constraints`.

    Args:
        theta: the current value θ of one variable.
        anchor: θ0, same shape (the pre-trained value).
        radius: γ, a scalar (one per variable).
        norm: `"mars"` (per row, the reference code's default for CNNs) or `"l2"`; see
            `distance_norms`.

    Returns:
        θ̃, the shape of `theta`.

    Example:
    >>> kernel = keras_tl.projection.project(kernel, source_kernel, radius=0.5)
    """
    delta = ops.stop_gradient(ops.subtract(theta, anchor))
    norms = ops.stop_gradient(distance_norms(delta, norm))
    return ops.add(ops.stop_gradient(anchor), projection_ratio(radius, norms) * delta)


@keras_tl_export("keras_tl.projection.initial_radius")
def initial_radius(norms):
    """γ at the first projection update: half the smallest row norm (`norms.min()/2` in `utils/tpgm.py`)."""
    return ops.min(norms) / 2.0


@keras_tl_export("keras_tl.projection.clip_radius")
def clip_radius(radius, norms):
    """γ kept in [1e-8, max row norm] before each use, as `utils/tpgm.py::_clip` does.

    A non-positive γ becomes 1e-8; a γ that leaves every row inside the ball (the smallest
    ratio above 1) becomes the largest row norm, so that γ never wanders where its
    gradient is 0 for every row.
    """
    radius = ops.where(radius <= 0.0, MIN_RADIUS, radius)
    outside = ops.min(ops.relu(radius) / (norms + EPSILON)) > 1.0
    return ops.where(outside, ops.max(norms), radius)
