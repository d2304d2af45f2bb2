"""The fine-tuning methods `apps.finetune --method` offers: one entry each, name → factory.

A factory takes the method's hyperparameters as keyword arguments (their defaults are the
papers' settings; `--hparams alpha=0.1` overrides them) and returns a `Setup`: what the
`TransferModel` needs and the callbacks the method uses. A method whose regularizer lands
later adds one function and one `METHODS` entry here; the app's flags, validation and
reports pick it up. Any method can be combined with DTNH (`l2_sp+dtnh`, or `--dtnh`).
"""

import dataclasses
import inspect
from collections.abc import Callable

from keras_tl import regularizers

DTNH_SUFFIX = "+dtnh"


@dataclasses.dataclass
class Setup:
    """What a method asks of the `TransferModel` and of `fit`.

    Attributes:
        regularizers: `keras_tl.regularizers.Regularizer` instances.
        freeze_backbone: train the head only (L2-FE).
        source_head: keep the source's upstream head next to the new one (two-head methods).
        keep_source: keep the frozen source copy even if no regularizer asks for it.
        callbacks: `(epochs, steps_per_epoch) -> list of keras.callbacks.Callback`, e.g. stage
            switches or a regularization decay.
    """

    regularizers: list
    freeze_backbone: bool = False
    source_head: bool = False
    keep_source: bool = False
    callbacks: Callable = lambda epochs, steps_per_epoch: []


def l2(beta=0.01):
    """Fine-tuning with weight decay on every variable (DELTA Sec. 2.2, Eq. 3)."""
    return Setup([regularizers.L2(beta=beta, scope="all")])


def l2_fe(beta=0.01):
    """Feature extraction: frozen backbone, a new head with weight decay (DELTA Sec. 4.2)."""
    return Setup([regularizers.L2(beta=beta, scope="head")], freeze_backbone=True)


def l2_sp(alpha=0.01, beta=0.01):
    """L2-SP: weight decay towards the source weights (Li et al., ICML 2018; DELTA Eq. 4)."""
    return Setup([regularizers.L2SP(alpha=alpha, beta=beta)])


def bss(beta=0.01, eta=0.001, k=1):
    """Fine-tuning with weight decay plus Batch Spectral Shrinkage of the k smallest singular values."""
    return Setup([regularizers.L2(beta=beta, scope="all"), regularizers.BSS(eta=eta, k=k)])


def lwf(beta=0.01, lam=1.0, temperature=2.0):
    """Learning without Forgetting: the upstream head's softened outputs stay close to the source's."""
    return Setup(
        [regularizers.L2(beta=beta, scope="all"), regularizers.LwF(lam=lam, temperature=temperature)],
        source_head=True,
    )


METHODS = {
    "l2": l2,
    "l2_fe": l2_fe,
    "l2_sp": l2_sp,
    "bss": bss,
    "lwf": lwf,
}


def hparam_names(method):
    return list(inspect.signature(METHODS[method]).parameters)


def split_entry(entry):
    """`"l2_sp+dtnh"` → `("l2_sp", True)`."""
    if entry.endswith(DTNH_SUFFIX):
        return entry[: -len(DTNH_SUFFIX)], True
    return entry, False


def check_entries(entries):
    """Raises `ValueError` naming the allowed methods if an entry is unknown."""
    unknown = [entry for entry in entries if split_entry(entry)[0] not in METHODS]
    if unknown or not entries:
        raise ValueError(
            f"Unknown method(s) {unknown}. Expected a comma-separated list of {sorted(METHODS)}, each "
            f"optionally followed by '{DTNH_SUFFIX}'."
        )


def check_hparams(entries, hparams):
    """Raises `ValueError` if a key of `hparams` is accepted by none of the chosen methods.

    A key is `name` (every chosen method that has it) or `method.name` (that method only).
    """
    methods = {split_entry(entry)[0] for entry in entries}
    allowed = {name for method in methods for name in hparam_names(method)}
    allowed |= {f"{method}.{name}" for method in methods for name in hparam_names(method)}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {unknown} for methods {sorted(methods)}. Expected keys from {sorted(allowed)}."
        )


def build(method, hparams):
    """The `Setup` of `method` with its keys of `hparams` (see `check_hparams`)."""
    names = hparam_names(method)
    kwargs = {key: value for key, value in hparams.items() if key in names}
    kwargs.update(
        {key.split(".", 1)[1]: value for key, value in hparams.items() if key.startswith(method + ".")}
    )
    return METHODS[method](**kwargs)
