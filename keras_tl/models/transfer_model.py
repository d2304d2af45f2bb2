"""TransferModel: a target network fine-tuned from a source, with regularizers and a gradient rule."""

import json
import warnings

import keras
from keras import ops

from keras_tl import backbones
from keras_tl import regularizers as regularizers_module
from keras_tl.api_export import keras_tl_export
from keras_tl.gradients.base import GradientRule
from keras_tl.models.objective import TransferObjective
from keras_tl.models.source import follow_global_policy, split_source
from keras_tl.models.taps import source_taps
from keras_tl.trainers import TransferTrainer
from keras_tl.utils.validation import check_number
from keras_tl.utils.weights import copy_weights


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
        keep_source_head: keep a trainable copy of the source's upstream head next to the new
            one (two-head target, for Co-Tuning, LwF, DI2): the model's `source_head`; needs a
            source ending in `Dense`. Default (`None`): kept exactly when a regularizer consumes
            `source_head_logits`; `False` with such a regularizer is an error naming it.
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
    >>> model.export("serving", format="tf_saved_model")  # the inference model: backbone + new head
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
        keep_source_head=None,
        dropout=0.0,
        source_weights=None,
        input_shape=None,
        keep_source=False,
        name="transfer_model",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
        dropout = check_number("dropout", dropout, minimum=0, maximum=1, exclusive_maximum=True)
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
        if self.gradient_rule is not None and not isinstance(self.gradient_rule, GradientRule):
            raise TypeError(
                "Expected gradient_rule to be a keras_tl.gradients.GradientRule (e.g. DTNH()) or None. "
                f"Received: gradient_rule={self.gradient_rule!r}"
            )
        if self.gradient_rule is not None and not self.regularizers:
            warnings.warn(
                f"gradient_rule={type(self.gradient_rule).__name__} combines the gradients of the data term "
                f"and of the regularizers, but regularizers is empty: every {self.gradient_rule.name}/* "
                "metric stays 0 and the step is plain fine-tuning. Add a regularizer "
                "(e.g. keras_tl.regularizers.L2SP()) or pass gradient_rule=None.",
                stacklevel=2,
            )
        for regularizer in self.regularizers if freeze_backbone and not keep_source_head else ():
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
        if keep_source_head is None:
            keep_source_head = bool(needs_head)
        elif not keep_source_head and needs_head:
            raise ValueError(
                f"Expected keep_source_head=True (or None) for the regularizers {needs_head}, which consume "
                "the target's copy of the upstream head ('source_head_logits'). Received: keep_source_head=False"
            )
        self.source_head = None
        if keep_source_head:
            if parts.head is None:
                raise ValueError(
                    "Expected a source whose last layer is a Dense classifier when keep_source_head=True"
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
            prefix = self.gradient_rule.name
            self.rule_trackers = {
                stat: keras.metrics.Mean(name=f"{prefix}/{stat}") for stat in self.gradient_rule.stat_names
            }
        self.objective = TransferObjective(self)
        self.objective.build(self.input_shape)
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
        return self.head(self.target_backbone(inputs, training=self.backbone_training(training))["features"])

    def backbone_training(self, training):
        """The backbone's `training` flag: never under `freeze_backbone` (L2-FE keeps BatchNorm's statistics)."""
        return bool(training) and not self.freeze_backbone

    def set_active_regularizers(self, names=None):
        """Makes only the regularizers named in `names` (all when None) enter the loss from the next step on.

        The steps are rebuilt rather than switched by a flag the compiled step cannot see:
        both Keras `fit` loops read `self.train_function` before every step, so this works
        inside one `fit` call (`keras_tl.callbacks.StagedRegularization`). Inactive terms
        cost nothing, and their own variables (attention layers) get no gradient from the
        loss (TensorFlow's optimizer skips them, with a warning; JAX applies zeros).
        """
        self.objective.set_active(names)
        if self.train_function is not None:
            self.make_train_function(force=True)
        self.test_function = None

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

    # ---------------------------------------------------------------- helpers

    def inference_model(self, name=None):
        """The plain classifier (target backbone + new head, logits), sharing this model's weights.

        No source copy, no regularizer, no upstream head: what `export` should serve.
        """
        inputs = keras.Input(shape=self.input_shape[1:], name="image")
        outputs = self.head(self.target_backbone(inputs, training=False)["features"])
        return keras.Model(inputs, outputs, name=name or f"{self.name}_inference")

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Exports `inference_model()` (backbone + new head, logits): what a server should run.

        The frozen source copy, the regularizers and the upstream head stay behind. Same
        arguments as `keras.Model.export`; `keras_tl.export.export_serving` adds TF Serving's
        folder layout, preprocessing and an encoded-image signature.
        """
        return self.inference_model().export(
            filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs
        )

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
            "keep_source_head": self.source_head is not None,
            "dropout": self.dropout,
            "keep_source": self.keep_source,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "source_head" in config:  # the name of keras_tl 0.1's files
            config["keep_source_head"] = config.pop("source_head")
        config["regularizers"] = [keras.saving.deserialize_keras_object(r) for r in config.get("regularizers", [])]
        return cls(**config)


def _rebuild(source, config, role):
    """A fresh copy of `source` (new layers, same names) holding `source`'s weights."""
    # A live source is the caller's own code, so its Lambda layers are trusted; inside
    # `load_model(safe_mode=True)` the surrounding safe-mode scope still takes precedence.
    rebuilt = keras.saving.deserialize_keras_object(follow_global_policy(json.loads(config)), safe_mode=False)
    copy_weights(source, rebuilt, source_name="source", target_name=f"{role} copy")
    return rebuilt
