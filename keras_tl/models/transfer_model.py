"""TransferModel: a target network fine-tuned from a source, with regularizers and a gradient rule."""

import json
import warnings

import keras
from keras import ops

from keras_tl import backbones
from keras_tl import regularizers as regularizers_module
from keras_tl.api_export import keras_tl_export
from keras_tl.models.source import follow_global_policy, split_source
from keras_tl.models.taps import source_taps
from keras_tl.regularizers.base import SOURCE_FORWARD_VALUES, WEIGHT_VALUES
from keras_tl.trainers import TransferTrainer
from keras_tl.utils.weights import copy_weights, layer_variable_keys, named_variables


@keras_tl_export("keras_tl.TransferModel")
class TransferModel(TransferTrainer, keras.Model):
    """A target classifier initialised from a source network and regularized towards it.

    The target is a copy of the source's feature extractor with a new linear head
    (`num_classes` logits). When a regularizer asks for source weights or features, a
    frozen copy of the source is kept (non-trainable, inference mode, no gradient). Taps
    are named layers whose outputs each forward pass returns as a dict, for the target and
    the frozen source alike; regularizers consume them (see `keras_tl.regularizers.base`).

    Training minimises J(w) + Σ_k Ω_k (DELTA Eq. 2), where J is Keras' `compute_loss`: the
    compiled loss plus the target's layer losses (`add_loss`, activity regularizers; see
    `losses`). Without a gradient rule the step does
    one backward pass of the sum; with one (e.g. `keras_tl.gradients.DTNH()`) it takes ∇J
    and ∇Ω = ∇Σ_k Ω_k separately from one shared forward pass, and the optimizer receives
    the rule's combined direction. `fit` logs `loss` (J + ΣΩ), `empirical_loss` (J),
    `reg/<name>` per regularizer, the compiled metrics, and the rule's diagnostics.

    Mixed precision works as in Keras' own trainers: under a `mixed_*` policy `compile`
    wraps the optimizer in a `LossScaleOptimizer` and the step scales the loss before
    differentiating (with a gradient rule, J and Ω by the same factor: DTNH is
    scale-equivariant, so the optimizer's unscaling stays exact). Regularizers compute in
    float32.

    L2-FE (feature extraction, DELTA Sec. 4.2) is `freeze_backbone=True`: the backbone is
    not trainable and always runs in inference mode (BatchNorm uses its moving statistics),
    so only the head trains.

    `regularization_stage` (a non-trainable int32 variable, 0 until
    `keras_tl.callbacks.StagedRegularization` switches) is the index of the stage the model
    trains in. It is saved with the weights, so a `BackupAndRestore` checkpoint resumes in
    the right stage; weights saved before it existed load as stage 0.

    Args:
        source: a functional `keras.Model` (the pretrained source; a keras-hub `Backbone`
            too), a backbone name from `keras_tl.backbones.NAMES` or `"keras_hub:<preset>"`
            (built with `source_weights` and `input_shape`), or a serialized model config.
            A subclassed model is refused (its layers cannot be copied or tapped). Its output
            is either features (a 4D map is globally average-pooled, a token map pooled as
            its own classifier does, see `split_source`) or an upstream classifier whose last
            layer is `Dense`; then the features are that layer's input and the `Dense` is the
            upstream head. Its copies follow the global dtype policy, whatever policy it was
            saved with (`keras_tl.models.source.follow_global_policy`).
        num_classes: number of target classes.
        taps: names of the layers whose outputs regularizers see (a list, never a string).
            Defaults to `keras_tl.backbones.default_taps(source)` for a backbone name; else,
            when a regularizer reads feature maps, to the default taps of a keras-hub backbone
            (`pyramid_outputs`) or of a model named after a known backbone; else none. A
            feature-map regularizer without taps is an error naming it
            (`keras_tl.models.taps.source_taps`).
        regularizers: list of `keras_tl.regularizers.Regularizer`, unique names.
        gradient_rule: `None` or a rule such as `keras_tl.gradients.DTNH()`.
        freeze_backbone: L2-FE, see above.
        feature_layer: name of the layer whose output feeds the head (default: see `source`).
        source_head: keep the source's upstream head next to the new one (two-head target,
            for Co-Tuning, LwF, DI2); needs a source ending in `Dense`. Default (`None`):
            kept exactly when a regularizer consumes `source_head_logits`; `False` with such
            a regularizer is an error naming it.
        dropout: dropout rate before the new head.
        source_weights, input_shape: used when `source` is a backbone name.
        keep_source: keep the frozen source copy even if no regularizer needs it (e.g.
            for a later stage that does).

    Example:
    >>> source = keras_tl.backbones.build("cifar_resnet20", weights="source.weights.h5")
    >>> model = keras_tl.TransferModel(
    ...     source, num_classes=10,
    ...     regularizers=[keras_tl.regularizers.L2SP(alpha=0.01, beta=0.01)],
    ...     gradient_rule=keras_tl.gradients.DTNH())
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=["accuracy"])
    >>> model.fit(train_ds, epochs=10)  # logs loss, empirical_loss, reg/l2_sp, dtnh/...
    >>> model.inference_model().export("serving", format="tf_saved_model")
    """

    def __init__(
        self,
        source,
        num_classes,
        taps=None,
        regularizers=(),
        gradient_rule=None,
        freeze_backbone=False,
        feature_layer=None,
        source_head=None,
        dropout=0.0,
        source_weights=None,
        input_shape=None,
        keep_source=False,
        name="transfer_model",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Expected num_classes to be a positive int. Received: num_classes={num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Expected 0 <= dropout < 1. Received: dropout={dropout!r}")
        source_name = source if isinstance(source, str) else None
        if isinstance(source, str):
            source = backbones.build(source, weights=source_weights, input_shape=input_shape)
        elif isinstance(source, dict):
            source = keras.saving.deserialize_keras_object(source)  # safe mode unless the caller opted out
        if not isinstance(source, keras.Model):
            raise TypeError(
                "Expected source to be a keras.Model, a backbone name from "
                f"{list(backbones.NAMES)} or 'keras_hub:<preset>', or a model config. Received: source={source!r}"
            )
        self.num_classes = num_classes
        self.freeze_backbone = bool(freeze_backbone)
        self.feature_layer = feature_layer
        self.dropout = float(dropout)
        self.keep_source = bool(keep_source)
        self.regularizers = [regularizers_module.get(r) for r in regularizers]
        names = [r.name for r in self.regularizers]
        if len(set(names)) != len(names):
            raise ValueError(f"Expected unique regularizer names. Received: names={names}")
        self.taps = source_taps(source, taps, self.regularizers, source_name)
        self.gradient_rule = (
            keras.saving.deserialize_keras_object(gradient_rule)
            if isinstance(gradient_rule, dict)
            else gradient_rule
        )
        # Settings that train without error but leave a part inert: say so before hours of training.
        if self.gradient_rule is not None and not self.regularizers:
            warnings.warn(
                f"gradient_rule={type(self.gradient_rule).__name__} combines the gradients of the data term "
                "and of the regularizers, but regularizers is empty: every "
                f"{type(self.gradient_rule).__name__.lower()}/* metric stays 0 and the step is plain "
                "fine-tuning. Add a regularizer (e.g. keras_tl.regularizers.L2SP()) or pass gradient_rule=None.",
                stacklevel=2,
            )
        for regularizer in self.regularizers if freeze_backbone and not source_head else ():
            if {"source_weights", "source_features", "source_pooled"} & set(regularizer.inputs):
                warnings.warn(
                    f"Regularizer {regularizer.name!r} pulls the backbone towards the source, but "
                    "freeze_backbone=True keeps the backbone equal to the source: that part of "
                    f"reg/{regularizer.name} stays 0. Pass freeze_backbone=False to fine-tune the backbone, or "
                    "use keras_tl.regularizers.L2(scope='head') to regularize the head of a frozen backbone.",
                    stacklevel=2,
                )
        # Kept as JSON: deserialization consumes the dict it is given.
        self._source_config = json.dumps(keras.saving.serialize_keras_object(source))

        # The target's own copy of the source (new layer objects, the source's weights).
        target = _rebuild(source, self._source_config, "target")
        parts = split_source(target, self.taps, feature_layer, logits_head_name="source_head")
        self.target_backbone = parts.extractor
        self.target_backbone.trainable = not self.freeze_backbone
        needs_head = [r.name for r in self.regularizers if "source_head_logits" in r.inputs]
        if source_head is None:
            source_head = bool(needs_head)
        elif not source_head and needs_head:
            raise ValueError(
                f"Expected source_head=True (or None) for the regularizers {needs_head}, which consume "
                "the target's copy of the upstream head ('source_head_logits'). Received: source_head=False"
            )
        self.source_head = None
        if source_head:
            if parts.head is None:
                raise ValueError(
                    "Expected a source whose last layer is a Dense classifier when source_head=True"
                    + (f" (the regularizers {needs_head} need it). " if needs_head else ". ")
                    + f"Received a source whose last layer is {type(source.layers[-1]).__name__} "
                    f"{source.layers[-1].name!r}"
                )
            self.source_head = parts.head
        self.head = keras.layers.Dense(num_classes, name="head")
        self.head.build((None, parts.feature_dim))
        self.dropout_layer = keras.layers.Dropout(self.dropout) if self.dropout else None

        needs_source = self.keep_source or any(r.requires_source for r in self.regularizers)
        self.source_backbone = None
        self.frozen_source_head = None
        if needs_source:
            frozen = _rebuild(source, self._source_config, "source")
            parts = split_source(frozen, self.taps, feature_layer, logits_head_name="source_head")
            self.source_backbone = parts.extractor
            self.source_backbone.trainable = False
            if parts.head is not None:
                self.frozen_source_head = parts.head
                self.frozen_source_head.trainable = False

        self.loss_trackers = {
            "loss": keras.metrics.Mean(name="loss"),
            "empirical_loss": keras.metrics.Mean(name="empirical_loss"),
        }
        self.reg_trackers = {r.name: keras.metrics.Mean(name=f"reg/{r.name}") for r in self.regularizers}
        self.rule_trackers = {}
        if self.gradient_rule is not None:
            prefix = type(self.gradient_rule).__name__.lower()
            self.rule_trackers = {
                stat: keras.metrics.Mean(name=f"{prefix}/{stat}") for stat in self.gradient_rule.stat_names
            }
        self._build_regularizers()
        # A variable, not an attribute: `BackupAndRestore` checkpoints and `.keras` files
        # carry it, so `StagedRegularization` resumes a killed run in the stage it was in.
        self.regularization_stage = self.add_weight(
            shape=(),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name="regularization_stage",
        )
        self.built = True

    # ---------------------------------------------------------------- forward pass & terms

    def call(self, inputs, training=False):
        return self.head(self.target_backbone(inputs, training=self._backbone_training(training))["features"])

    def _backbone_training(self, training):
        return bool(training) and not self.freeze_backbone

    def step_values(self, x, y=None, training=False, names=None):
        """The values regularizers consume (`keras_tl.regularizers.base.STEP_VALUES`).

        One target forward pass, plus one source forward pass only when `names` (default:
        what the active regularizers need) asks for source features.
        """
        names = set(self._needed_values() if names is None else names)
        target = self.target_backbone(x, training=self._backbone_training(training))
        pooled = target["features"]
        head_input = self.dropout_layer(pooled, training=training) if self.dropout_layer else pooled
        values = {
            "labels": y,
            "logits": self.head(head_input),
            "target_features": target["taps"],
            "target_pooled": pooled,
        }
        if self.source_head is not None:
            values["source_head_logits"] = self.source_head(pooled)
        if names & SOURCE_FORWARD_VALUES:
            source = self.source_backbone(x, training=False)
            values["source_features"] = {k: ops.stop_gradient(v) for k, v in source["taps"].items()}
            values["source_pooled"] = ops.stop_gradient(source["features"])
            if "source_logits" in names:
                if self.frozen_source_head is None:
                    raise ValueError("Expected a source ending in a Dense classifier for 'source_logits'.")
                values["source_logits"] = ops.stop_gradient(self.frozen_source_head(values["source_pooled"]))
        if names & WEIGHT_VALUES:
            values.update(self.weight_values())
        return values

    def weight_values(self):
        """`{"target_weights": {key: value}, "source_weights": {key: value}}` for trainable target variables.

        Keys are `backbone/<layer>/<variable>`, `head/<variable>` and `source_head/<variable>`;
        `source_weights` holds the frozen source's value of every key it has a counterpart
        for (BatchNorm moving statistics are not trainable and never appear).
        """
        target, counterpart = {}, {}
        for key, variable, source_variable in self._weight_items():
            target[key] = variable.value
            if source_variable is not None:
                counterpart[key] = source_variable.value
        return {"target_weights": target, "source_weights": counterpart}

    def _weight_items(self):
        source_by_key = {}
        if self.source_backbone is not None:
            source_by_key.update(_keyed_variables("backbone", self.source_backbone))
        if self.frozen_source_head is not None:
            source_by_key.update(_keyed_variables("source_head", self.frozen_source_head))
        parts = [("backbone", self.target_backbone), ("head", self.head)]
        if self.source_head is not None:
            parts.append(("source_head", self.source_head))
        items = []
        for prefix, part in parts:
            for key, variable in _keyed_variables(prefix, part).items():
                if variable.trainable:
                    items.append((key, variable, source_by_key.get(key)))
        return items

    @property
    def active_regularizers(self):
        """The regularizers the train and test steps compute: all, unless `set_active_regularizers` chose."""
        names = getattr(self, "_active_regularizer_names", None)
        if names is None:
            return self.regularizers
        return [r for r in self.regularizers if r.name in names]

    def set_active_regularizers(self, names=None):
        """Makes only the regularizers named in `names` (all when None) enter the loss from the next step on.

        The steps are rebuilt rather than switched by a flag the compiled step cannot see:
        both Keras `fit` loops read `self.train_function` before every step, so this works
        inside one `fit` call (`keras_tl.callbacks.StagedRegularization`). Inactive terms
        cost nothing, and their own variables (attention layers) get no gradient from the
        loss (TensorFlow's optimizer skips them, with a warning; JAX applies zeros).
        """
        if names is not None:
            names = tuple(names)
            known = [r.name for r in self.regularizers]
            unknown = [name for name in names if name not in known]
            if unknown:
                raise ValueError(
                    f"Expected names of this model's regularizers {known}. Received unknown names: {unknown}"
                )
        self._active_regularizer_names = names
        if self.train_function is not None:
            self.make_train_function(force=True)
        self.test_function = None

    def _needed_values(self, regularizers=None):
        regs = self.active_regularizers if regularizers is None else regularizers
        return {name for reg in regs for name in reg.inputs}

    def regularization_terms(self, values, regularizers=None):
        """`{name: scalar}` for each regularizer, given the step values."""
        regs = self.active_regularizers if regularizers is None else regularizers
        return {reg.name: reg(*[values[k] for k in reg.inputs]) for reg in regs}

    def empirical_loss(self, x, y, y_pred, sample_weight=None, training=True):
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def _build_regularizers(self):
        """Builds the regularizers' own weights now (never inside a traced step)."""
        pending = [r for r in self.regularizers if not r.built]
        if not pending:
            return
        x = keras.KerasTensor((None,) + tuple(self.input_shape[1:]), dtype="float32")
        names = self._needed_values(pending) - WEIGHT_VALUES
        values = self.step_values(x, keras.KerasTensor((None,), dtype="int32"), names=names)
        for reg in pending:
            if reg.depends_on_weights_only:
                reg.build()
            else:
                reg(*[values[k] for k in reg.inputs])

    @property
    def losses(self):
        """Layer losses (`add_loss`, activity and weight regularizers) of the target's own layers.

        Keras' `compute_loss` adds them to the compiled loss, so they are part of J (and of
        ∇J under a gradient rule such as DTNH), as in a plain `keras.Model`. The frozen
        source copy's are left out (terms of a network that does not train), and so are the
        regularizers' (they are Ω).
        """
        parts = ("target_backbone", "head", "source_head", "dropout_layer")
        layers = [getattr(self, part, None) for part in parts]
        return [loss for layer in layers if layer is not None for loss in layer.losses]

    # ---------------------------------------------------------------- metrics

    @property
    def metrics(self):
        # Our "loss" tracker (J + ΣΩ) replaces Keras' own, which the custom steps never update.
        own = self.loss_trackers["loss"]
        return [m for m in super().metrics if m.name != "loss" or m is own]

    def _update_trackers(self, x, y, y_pred, sample_weight, empirical, terms, stats=None):
        """Updates every tracker and returns the step's logs (active terms only)."""
        batch = ops.shape(y_pred)[0]
        total = empirical
        for value in terms.values():
            total = total + value
        self.loss_trackers["loss"].update_state(total, sample_weight=batch)
        self.loss_trackers["empirical_loss"].update_state(empirical, sample_weight=batch)
        for name, value in terms.items():
            self.reg_trackers[name].update_state(value, sample_weight=batch)
        for name, value in (stats or {}).items():
            self.rule_trackers[name].update_state(value)
        logs = self.compute_metrics(x, y, y_pred, sample_weight)
        hidden = {f"reg/{r.name}" for r in self.regularizers if r.name not in terms}
        if stats is None:
            hidden |= {m.name for m in self.rule_trackers.values()}
        return {k: v for k, v in logs.items() if k not in hidden}

    # ---------------------------------------------------------------- helpers

    def inference_model(self, name=None):
        """The plain classifier (target backbone + new head, logits), sharing this model's weights.

        No source copy, no regularizer, no upstream head: what `export` should serve.
        """
        inputs = keras.Input(shape=self.input_shape[1:], name="image")
        outputs = self.head(self.target_backbone(inputs, training=False)["features"])
        return keras.Model(inputs, outputs, name=name or f"{self.name}_inference")

    @property
    def input_shape(self):
        return tuple(self.target_backbone.inputs[0].shape)

    def sync_source_from_target(self):
        """Copies the target's backbone (and upstream head) weights into the frozen source copy.

        The stage switch of SPA/GCA (Kang & Kang, Eq. 11-12): the weights of the target
        trained in stage 1 become the source of stage 2.
        """
        if self.source_backbone is None:
            raise ValueError("Expected a frozen source copy (keep_source=True) to sync into.")
        copy_weights(self.target_backbone, self.source_backbone, source_name="target", target_name="source")
        if self.source_head is not None and self.frozen_source_head is not None:
            for target_var, source_var in zip(self.source_head.weights, self.frozen_source_head.weights, strict=True):
                source_var.assign(ops.convert_to_numpy(target_var))

    def load_own_variables(self, store):
        # Weights saved before the stage variable existed hold nothing of the model's own:
        # they load as stage 0 (what a model without `StagedRegularization` is in).
        if len(store.keys()) == 0:
            self.regularization_stage.assign(0)
            return
        super().load_own_variables(store)

    def get_config(self):
        return {
            "name": self.name,
            "source": json.loads(self._source_config),
            "num_classes": self.num_classes,
            "taps": self.taps,
            "regularizers": [keras.saving.serialize_keras_object(r) for r in self.regularizers],
            "gradient_rule": (
                None if self.gradient_rule is None else keras.saving.serialize_keras_object(self.gradient_rule)
            ),
            "freeze_backbone": self.freeze_backbone,
            "feature_layer": self.feature_layer,
            "source_head": self.source_head is not None,
            "dropout": self.dropout,
            "keep_source": self.keep_source,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["regularizers"] = [keras.saving.deserialize_keras_object(r) for r in config.get("regularizers", [])]
        return cls(**config)


def _rebuild(source, config, role):
    """A fresh copy of `source` (new layers, same names) holding `source`'s weights."""
    # A live source is the caller's own code, so its Lambda layers are trusted; inside
    # `load_model(safe_mode=True)` the surrounding safe-mode scope still takes precedence.
    rebuilt = keras.saving.deserialize_keras_object(follow_global_policy(json.loads(config)), safe_mode=False)
    copy_weights(source, rebuilt, source_name="source", target_name=f"{role} copy")
    return rebuilt


def _keyed_variables(prefix, part):
    if isinstance(part, keras.Model):
        return {f"{prefix}/{key}": v for key, v in named_variables(part).items()}
    return {f"{prefix}/{suffix}": v for suffix, v in layer_variable_keys(part)}
