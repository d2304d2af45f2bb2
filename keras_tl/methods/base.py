"""The method unit: one fine-tuning method, its hyperparameters and what every consumer reads of it.

A method is a registered frozen dataclass: its fields are the hyperparameters (their defaults
the papers' settings), its class attributes the metadata that `keras_tl.fine_tune`, the apps,
the benchmark's plans and report and the step-time script read (display name, reference, the
coefficient and grid the benchmark sweeps, the paper claims it takes part in, the source it is
benchmarked with), and its methods the parts of the recipe (the terms, measured on the training
data when they need it; the `fit` callbacks; an optimizer wrapper). Nothing else keeps a table
of methods: adding one is one class in one file.

Registering is `keras_tl.methods.register` (`keras_tl.methods.registry`).

Example:
>>> @keras_tl.methods.register
... class L1SP(keras_tl.methods.Method):
...     name = "l1_sp"
...     display_name = "L1-SP"
...     coefficient = "alpha"
...     alpha: float = 0.01
...     def terms(self, context):
...         return [keras_tl.regularizers.from_function(l1_sp, alpha=self.alpha)]
>>> keras_tl.fine_tune("l1_sp", source, train, epochs=10)
"""

import dataclasses
import math
import numbers

from keras_tl.api_export import keras_tl_export

DTNH_SUFFIX = "+dtnh"
# The benchmark's near-transfer targets (few shots, a source whose features fit them; issue 29): the
# papers' regime, where their claims over plain fine-tuning are checked.
NEAR_TRANSFER = ("tin-b", "tin-b5", "tin-b25")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A paper's claim that the claiming method is at least as accurate as method `over`.

    Attributes:
        over: the registered name (or `<name>+dtnh` label) of the method it should not lose to.
        datasets: the benchmark data sets the claim is checked on; None: every one.
    """

    over: str
    datasets: tuple | None = None


@dataclasses.dataclass(frozen=True)
class Context:
    """What data-dependent methods measure before training.

    Attributes:
        source: the source network, as given to `TransferModel`.
        taps: the tapped layer names.
        train: the training split (`keras_tl.data.load`'s result: `.dataset` of
            `(images, integer labels)` batches, `.num_classes`), or None. `Method.setup` makes
            plain data one and undoes MixUp/CutMix (`keras_tl.data.plain_split`).
        cache_dir: where measurements are cached (a rerun reads them back), or None.
        validation: held-out data (never the test split) for the methods that choose or learn
            on it (LP-FT's C, WiSE-FT's α, TPGM's radii), or None.
    """

    source: object = None
    taps: tuple = ()
    train: object = None
    cache_dir: str | None = None
    validation: object = None

    def require_train(self, method):
        if self.train is None:
            raise ValueError(
                f"Expected the training data for method {method.name!r}, which measures it before "
                "fine-tuning (method.setup(source, train, ...)). Received: train=None"
            )
        return self.train

    def require_validation(self, method):
        if self.validation is None:
            raise ValueError(
                f"Expected held-out validation data for method {method.name!r}, which chooses or learns on "
                "it (fine_tune(..., validation_data=...); never the test split). Received: validation=None"
            )
        return self.validation


@dataclasses.dataclass
class Setup:
    """A method prepared for one training split: what its `TransferModel` is built from.

    Attributes:
        regularizers: `keras_tl.regularizers.Regularizer` instances.
        freeze_backbone: train the head only (L2-FE).
        keep_source_head: keep the source's upstream head next to the new one (two-head methods).
        keep_source: keep the frozen source copy even if no regularizer asks for it.
        head_weights: `(kernel, bias)` the new head starts from (LP-FT's probe), or None.
        context: the `Context` it was prepared with (its callbacks and `finish` read it).
    """

    regularizers: list
    freeze_backbone: bool = False
    keep_source_head: bool = False
    keep_source: bool = False
    head_weights: tuple | None = None
    context: Context = dataclasses.field(default_factory=Context)


def resolve_taps(source, taps=None):
    """`taps` as a list (a string is an error); `None`: `keras_tl.backbones.known_taps(source)`."""
    from keras_tl import backbones
    from keras_tl.models.taps import check_taps_argument

    taps = check_taps_argument(taps)
    return backbones.known_taps(source) if taps is None else taps


@keras_tl_export("keras_tl.methods.Method")
@dataclasses.dataclass(frozen=True, repr=False)
class Method:
    """Base of the fine-tuning methods: hyperparameters as fields, metadata as class attributes.

    A subclass sets `name` and implements `terms`; it overrides the other hooks it needs.

    Class attributes (metadata):
        name: the registry key (`"l2_sp"`), also `apps.finetune --method`.
        display_name: how tables name it (`"L2-SP"`).
        reference: the paper and equations it implements.
        rule: its rule in one line (the README's methods table).
        coefficient: the hyperparameter the benchmark's grid sweeps (None: no grid).
        grid_factors: the grid's values as multiples of the coefficient's paper value.
        select_factors: the multiples of the coefficient's default (at the batch size, as the
            grid's centre) that `keras_tl.select` tries by default; empty: not a default candidate.
        select_variants: the hyperparameters over its defaults of each of its default candidate
            sets, in priority order: one candidate each (at each of `select_factors` for a
            method with a coefficient); `({},)`: its defaults only.
        coefficient_batch_size: for a term summed over the batch, the batch size the paper's
            coefficient was tuned at (the grid's centre at batch B is then value·it/B); None.
        grid_from: the method whose grid chooses this one's coefficient (None: its own).
        claims: `Claim`s of the papers about this method.
        upstream: the upstream loss of the source the benchmark fine-tunes it from.
        benchmark_dtnh: the benchmark also runs it under DTNH.
        dtnh_sweep: the coefficient values of the benchmark's X vs DTNH(X) sweep (empty: none).
        quick_hparams: hyperparameters of the benchmark's `--quick` CI run.
        authors_hparams: the hyperparameters that differ from the defaults in the papers' own
            settings and conventions (e.g. KnowDist's α = 0.01 summed over the batch, where the
            default is a scale-free α); `authors()` is the method with them.
        cross_backend: which of its benchmark rows (`False`: plain, `True`: under DTNH) the
            benchmark also runs on the JAX backend, to compare the backends.
        freeze_backbone, keep_source_head, keep_source: what it asks of the `TransferModel`.
        needs_validation: it chooses or learns on held-out data (`fine_tune(validation_data=)`);
            a property where it depends on the hyperparameters, so read it on an instance.
        selects_on_validation: what it does with held-out data is choose one of a few settings
            before training (LP-FT's C), the kind of choice `keras_tl.select` makes among its
            candidates on the same split, so it may be one of them; a method that learns on
            it (TPGM's radii) or changes the scored model after training (WiSE-FT, which
            `select` itself tries on its choice) may not.

    Fields: its hyperparameters (each subclass's), and `dtnh`: combine the terms' gradient with
    the empirical loss's by `keras_tl.gradients.DTNH` (the `+dtnh` suffix of `get`).
    """

    name = None
    display_name = None
    reference = ""
    rule = ""
    coefficient = None
    grid_factors = (0.1, 1.0, 10.0)
    select_factors = ()
    select_variants = ({},)
    coefficient_batch_size = None
    grid_from = None
    claims = ()
    upstream = "cross_entropy"
    benchmark_dtnh = False
    dtnh_sweep = ()
    quick_hparams = {}
    authors_hparams = {}
    cross_backend = ()
    freeze_backbone = False
    keep_source_head = False
    keep_source = False
    needs_validation = False
    selects_on_validation = False

    dtnh: bool = dataclasses.field(default=False, kw_only=True)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.name != "dtnh":
                check_hparam(self, field.name, getattr(self, field.name))
        if not isinstance(self.dtnh, bool):
            raise ValueError(f"Expected dtnh to be True or False. Received: dtnh={self.dtnh!r}")

    # ------------------------------------------------------------------ hyperparameters

    @classmethod
    def defaults(cls):
        """`{name: default}` of the hyperparameters: the papers' settings."""
        return {f.name: f.default for f in dataclasses.fields(cls) if f.name != "dtnh"}

    @classmethod
    def authors(cls, dtnh=False):
        """The method with the papers' own hyperparameters and conventions (`authors_hparams`)."""
        return cls(**cls.authors_hparams, dtnh=dtnh)

    @property
    def hparams(self):
        """The hyperparameters that differ from the defaults."""
        defaults = self.defaults()
        return {key: getattr(self, key) for key, default in defaults.items() if getattr(self, key) != default}

    @property
    def label(self):
        """`"l2_sp+dtnh"`: the name `get` parses, the apps and the reports use."""
        return self.name + (DTNH_SUFFIX if self.dtnh else "")

    @classmethod
    def display(cls, dtnh=False):
        """The table name, `"DTNH(L2-SP)"` under DTNH."""
        text = cls.display_name or cls.name
        return f"DTNH({text})" if dtnh else text

    def get_config(self):
        return {**{k: getattr(self, k) for k in self.defaults()}, "dtnh": self.dtnh}

    def __repr__(self):
        fields = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({fields})"

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ the recipe's parts

    def terms(self, context):
        """The regularizers, measured on `context.train` when the method needs it (see `Context`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement terms(context).")

    def head_weights(self, context):
        """`(kernel, bias)` the new head starts from, or None: a random head."""
        return None

    def callbacks(self, epochs, steps_per_epoch, setup=None):
        """The method's own `fit` callbacks (stage switches, TPGM's projection) for `epochs` ×
        `steps_per_epoch` steps; `setup` (`setup()`'s result) holds its held-out data."""
        del epochs, steps_per_epoch, setup
        return []

    def optimizer(self, optimizer):
        """The optimizer `fit` uses, given the recipe's (a method that constrains the step wraps it)."""
        return optimizer

    def finish(self, model, setup):
        """`(model, report)` after training: WiSE-FT interpolates the model towards the source and
        reports its α (`fine_tune` adds the report to the history); default: `(model, {})`."""
        del setup
        return model, {}

    def gradient_rule(self):
        from keras_tl import gradients

        return gradients.DTNH() if self.dtnh else None

    def setup(self, source=None, train=None, taps=(), cache_dir=None, validation=None):
        """The method prepared for `train` (a `Setup`): its data-dependent terms measured once.

        `train`: a `keras_tl.data` split or plain data (see `keras_tl.data.as_split`), or None.
        """
        from keras_tl import data  # tf.data: imported on first use

        # Pass 0: `keras_tl.select`'s candidates share one split, and a preparation that read the
        # pass the previous candidate left changed (Co-Tuning's relationship by up to 0.7).
        train = data.first_pass(train, name="train")
        context = Context(source, tuple(taps), train, cache_dir, validation)
        return Setup(
            list(self.terms(context)),
            freeze_backbone=self.freeze_backbone,
            keep_source_head=self.keep_source_head,
            keep_source=self.keep_source,
            head_weights=self.head_weights(context),
            context=context,
        )

    def build(self, source, train, taps=None, cache_dir=None, dropout=0.0, setup=None):
        """The `TransferModel` of this method from `source`, for the classes of `train`.

        Args:
            source: the source `keras.Model` (or a backbone name).
            train: the training split (`keras_tl.data.load`'s result, or plain data, see
                `keras_tl.data.as_split`); data-dependent methods measure it, and its
                `num_classes` sizes the head.
            taps: tapped layers; default `keras_tl.backbones.default_taps` of the source's name.
            cache_dir: where measurements are cached (DELTA's channel weights).
            dropout: dropout before the new head.
            setup: a `Setup` already made by `setup()` (then nothing is measured again).
        """
        from keras_tl import data  # tf.data: imported on first use
        from keras_tl.models import TransferModel

        train = data.as_split(train, name="train")
        taps = resolve_taps(source, taps)
        setup = setup or self.setup(source, train, taps, cache_dir)
        model = TransferModel(
            source,
            num_classes=train.num_classes,
            taps=taps,
            regularizers=setup.regularizers,
            gradient_rule=self.gradient_rule(),
            freeze_backbone=setup.freeze_backbone,
            keep_source_head=setup.keep_source_head or None,
            keep_source=setup.keep_source,
            dropout=dropout,
        )
        if setup.head_weights is not None:
            model.head.set_weights(list(setup.head_weights))
        return model


def check_hparam(method, key, value):
    """Raises `ValueError` unless `value` fits hyperparameter `key` (`name` or `method.name`) of `method`
    (a class or instance).

    A bool where the default is one; a finite number where the default is one, an integer
    where the default is an int. Other defaults (strings) are left to the terms to check.
    """
    defaults = method.defaults()
    name = key.rpartition(".")[2]  # `method.name`, as the apps' --hparams spell a method's own
    if name not in defaults:
        raise ValueError(
            f"Expected hyperparameters of {method.name!r} from {sorted(defaults)}. Received: {key}={value!r}"
        )
    default = defaults[name]
    example = f"e.g. the default {default!r} of {method.name}"
    if isinstance(default, bool):
        if not isinstance(value, bool):  # 0/1 or "false" would pass a truth test unnoticed
            raise ValueError(f"Expected {key} to be True or False ({example}). Received: {key}={value!r}")
        return
    if not isinstance(default, (int, float)):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"Expected {key} to be a finite number ({example}). Received: {key}={value!r}")
    if isinstance(default, int) and not float(value).is_integer():
        raise ValueError(f"Expected {key} to be an integer ({example}). Received: {key}={value!r}")
