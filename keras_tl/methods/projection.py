"""Methods that keep the fine-tuned weights near the source during training, each variable by its own rule.

TPGM projects each variable into a radius learned on held-out batches, FTP into one learned from
the training loss itself, SPD decays selectively towards the source, and surgical fine-tuning
(Auto-RGN) scales each variable's learning rate (their optimizers and callbacks: `keras_tl.optimizers`,
`keras_tl.callbacks`). Each constrains a base method, as `keras_tl.methods.robust`'s do.
"""

from keras_tl.api_export import keras_tl_export
from keras_tl.methods.registry import register
from keras_tl.methods.robust import Constrained
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.methods.TPGM", package="keras_tl.methods")
@register
class TPGM(Constrained):
    """TPGM: each variable projected into a radius γ_l around the source, γ learned on held-out batches.

    θ ← θ0 + min(1, γ_l/‖θ − θ0‖)·(θ − θ0) after every step (MARS norm), γ taking Adam steps
    (lr `proj_lr`) on the cross-entropy of validation batches through the projected model;
    the new head is not projected (`keras_tl.callbacks.TPGM`). Needs validation data.
    Reference: Tian et al., "Trainable Projected Gradient Method for Robust Fine-tuning",
    CVPR 2023, Sec. 3; PotatoTian/TPGM `utils/tpgm.py`.

    Example:
    >>> keras_tl.fine_tune("tpgm", source, train, epochs=20, validation_data=val)
    """

    name = "tpgm"
    display_name = "TPGM"
    reference = "Tian et al. CVPR 2023, Sec. 3"
    rule = "θ ← θ0 + min(1, γ_l/‖θ − θ0‖)(θ − θ0), radii γ_l learned on held-out batches"
    # θ0 from the checkpointed source copy: a resumed run projects towards the source, not the restart.
    keep_source = True
    needs_validation = True

    norm: str = "mars"
    proj_lr: float = 0.01
    update_every: int = 1
    update_steps: int = 1

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        from keras_tl.callbacks import TPGM as TPGMCallback

        context = setup.context if setup is not None else None
        if context is None:
            raise ValueError(
                "Expected the method's setup (it holds the validation data TPGM learns its radii on)."
            )
        projection = TPGMCallback(
            validation_data=context.require_validation(self),
            norm=self.norm,
            learning_rate=self.proj_lr,
            update_every=self.update_every,
            update_steps=self.update_steps,
            batch_size=getattr(context.train, "batch_size", None) or 64,
        )
        return super().callbacks(epochs, steps_per_epoch, setup) + [projection]


@keras_tl_export("keras_tl.methods.FTP", package="keras_tl.methods")
@register
class FTP(Constrained):
    """FTP: each backbone variable kept within a learned distance γ_l of the source, γ from the loss itself.

    The base method's optimizer wrapped in `keras_tl.optimizers.FTP`: after each step
    θ ← θ0 + min(1, γ_l/‖θ − θ0‖)(θ − θ0) (MARS norm per output unit), γ_l following Adam on
    the hypergradient of the training loss through the previous projection; no held-out data.
    The new head is not projected, as the official run excludes `module.head` (θ0 of the
    backbone: its values when the optimizer is built, the source's). Reference: Tian et al.,
    "Fast Trainable Projection for Robust Fine-Tuning", NeurIPS 2023, Algorithm 1; GT-RIPL/FTP.

    Example:
    >>> keras_tl.fine_tune("ftp", source, train, epochs=20)
    """

    name = "ftp"
    display_name = "FTP"
    reference = "Tian et al. NeurIPS 2023, Alg. 1"
    rule = "θ ← θ0 + min(1, γ_l/‖θ − θ0‖)(θ − θ0) after each step, γ_l by Adam on the loss's hypergradient"
    # Learns nothing on held-out data, so a default candidate of keras_tl.select.
    select_factors = (1.0,)

    k: float = 1.0
    gamma_learning_rate: float = 0.01

    def __post_init__(self):
        super().__post_init__()
        check_number("k", self.k, minimum=0, maximum=1)
        check_number("gamma_learning_rate", self.gamma_learning_rate, minimum=0, exclusive=True)

    def optimizer(self, optimizer):
        from keras_tl import optimizers

        return optimizers.FTP(
            super().optimizer(optimizer),
            k=self.k,
            gamma_learning_rate=self.gamma_learning_rate,
            exclude=("^head/",),
        )


@keras_tl_export("keras_tl.methods.SPD", package="keras_tl.methods")
@register
class SPD(Constrained):
    """SPD: a decay towards the source applied only to the variables whose step is inconsistent.

    The base method's optimizer wrapped in `keras_tl.optimizers.SPD`: after each step, a
    variable whose gradient points back to the source (c = −⟨g, θ_{t−1} − θ0⟩ < 0) while its
    step still moved away (r = clip((‖θ̃ − θ0‖ − ‖θ_{t−1} − θ0‖)/‖θ̃ − θ0‖, 0, 1) > 0) is pulled
    back, θ ← θ̃ − λ·r·(θ̃ − θ0), λ = `strength` (1: back to its previous distance). Every
    variable is decayed, the new head towards its initialisation, as the official README
    passes all parameters. Reference: Tian, Huang and Kira, "Rethinking Weight Decay for
    Robust Fine-Tuning of Foundation Models", NeurIPS 2024, Sec. 3, Alg. 1;
    GT-RIPL/Selective-Projection-Decay.

    Example:
    >>> keras_tl.fine_tune("spd", source, train, epochs=20)
    """

    name = "spd"
    display_name = "SPD"
    reference = "Tian et al. NeurIPS 2024, Alg. 1"
    rule = "θ ← θ̃ − λ·r·(θ̃ − θ0) where the gradient points to the source but the step moved away"
    # Learns nothing on held-out data, so a default candidate of keras_tl.select.
    select_factors = (1.0,)

    strength: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_number("strength", self.strength, minimum=0)

    def optimizer(self, optimizer):
        from keras_tl import optimizers

        return optimizers.SPD(super().optimizer(optimizer), strength=self.strength)


@keras_tl_export("keras_tl.methods.Surgical", package="keras_tl.methods")
@register
class Surgical(Constrained):
    """Surgical fine-tuning (Auto-RGN): each variable's learning rate scaled by its relative gradient norm.

    The base method's optimizer wrapped in `keras_tl.optimizers.AutoRGN`, its scales
    RGN_l / max RGN (RGN_l = ‖g_l‖/‖θ_l‖ over `num_batches` training batches) refreshed at
    the start of every epoch by `keras_tl.callbacks.AutoRGNScales`; BatchNormalization's γ, β
    are not trained (the official code leaves parameters named "bn" out). Reference: Lee et
    al., "Surgical Fine-Tuning Improves Adaptation to Distribution Shifts", ICLR 2023, Sec. 5;
    anniesch/surgical-finetuning.

    Example:
    >>> keras_tl.fine_tune("surgical", source, train, epochs=20)
    """

    name = "surgical"
    display_name = "Surgical (Auto-RGN)"
    reference = "Lee et al. ICLR 2023, Sec. 5"
    rule = "lr_l = lr · RGN_l / max RGN, RGN_l = ‖g_l‖/‖θ_l‖ on a few batches each epoch"
    # Not a default candidate of keras_tl.select: at a learning rate tuned for plain fine-tuning it
    # under-fits (DTD-10: 10 points below L2, docs/benchmarks/notes.md); it needs its own.

    num_batches: int = 5

    def __post_init__(self):
        super().__post_init__()
        check_number("num_batches", self.num_batches, minimum=1, integer=True)

    def optimizer(self, optimizer):
        from keras_tl import optimizers

        return optimizers.AutoRGN(super().optimizer(optimizer), frozen=("_bn/",))

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        from keras_tl.callbacks import AutoRGNScales

        context = setup.context if setup is not None else None
        if context is None:
            raise ValueError("Expected the method's setup (it holds the training batches Auto-RGN measures).")
        train = context.require_train(self)
        scales = AutoRGNScales(getattr(train, "dataset", train), num_batches=self.num_batches)
        return super().callbacks(epochs, steps_per_epoch, setup) + [scales]
