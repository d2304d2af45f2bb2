"""`TransferObjective`: the regularization terms of a `TransferModel`, and what they consume.

The declared interface between a `TransferModel` and its backend's train step
(`keras_tl/trainers/<backend>.py`), written once for both backends. The trainers call only
these methods (and Keras' public API): which terms are active and which of them depend on the
weights alone (`partition`), one forward pass that yields the logits, J and the forward terms
(`forward`), the weight-only terms (`weight_terms`), and the step's logs (`logs`).

Design: the objective is plain Python over the parts the model owns (target backbone, new
head, upstream-head copy, frozen source copy, regularizers, stage variable), not a Keras
layer of its own. The model keeps owning every layer and variable, so a `.keras` file
stores them at the paths keras_tl 0.1 wrote (those files keep loading) and Keras tracks
each variable once; the objective owns the logic the trainers used to reach into the model
for (the private `_needed_values`, `_update_trackers`, the weight-only/forward split that
both trainers repeated).
"""

import dataclasses

import keras
from keras import ops

from keras_tl.regularizers.base import SOURCE_FORWARD_VALUES, WEIGHT_VALUES
from keras_tl.utils.weights import layer_variable_keys, named_variables


@dataclasses.dataclass
class Forward:
    """One forward pass of the objective: the new head's logits, J, and `{name: term}`."""

    logits: object
    empirical: object
    terms: dict


class TransferObjective:
    """J + Σ_k Ω_k of a `TransferModel` (DELTA Eq. 2): its terms, their inputs, their logs.

    Args:
        model: the `TransferModel` whose parts the objective reads (`target_backbone`, `head`,
            `source_head`, `dropout_layer`, `source_backbone`, `frozen_source_head`,
            `regularizers`, `backbone_training(training)`, `compute_loss`, the trackers).
    """

    def __init__(self, model):
        self.model = model
        self._active_names = None

    # ------------------------------------------------------------------ which terms

    @property
    def regularizers(self):
        return self.model.regularizers

    @property
    def active(self):
        """The regularizers the steps compute: all, unless `set_active` chose."""
        if self._active_names is None:
            return list(self.regularizers)
        return [r for r in self.regularizers if r.name in self._active_names]

    def set_active(self, names=None):
        """Only the regularizers named in `names` (all when None) enter the objective."""
        if names is not None:
            names = tuple(names)
            known = [r.name for r in self.regularizers]
            unknown = [name for name in names if name not in known]
            if unknown:
                raise ValueError(
                    f"Expected names of this model's regularizers {known}. Received unknown names: {unknown}"
                )
        self._active_names = names

    def partition(self, rule=None):
        """`(forward, weight_only)` active regularizers.

        Without a gradient rule every term goes through the one backward pass of the sum. With
        one, a term of the weights alone (L2-SP) gets its gradient without a pass through the
        network, so only the terms that need the forward pass share it with J.
        """
        active = self.active
        if rule is None:
            return active, []
        weight_only = [r for r in active if r.depends_on_weights_only]
        return [r for r in active if not r.depends_on_weights_only], weight_only

    @staticmethod
    def needed_values(regularizers):
        return {name for reg in regularizers for name in reg.inputs}

    # ------------------------------------------------------------------ the values

    def step_values(self, x, y=None, training=False, names=None):
        """The values regularizers consume (`keras_tl.regularizers.base.STEP_VALUES`).

        One target forward pass, plus one source forward pass only when `names` (default:
        what the active regularizers need) asks for source features.
        """
        model = self.model
        names = set(self.needed_values(self.active) if names is None else names)
        target = model.target_backbone(x, training=model.backbone_training(training))
        pooled = target["features"]
        head_input = model.dropout_layer(pooled, training=training) if model.dropout_layer else pooled
        values = {
            "labels": y,
            "logits": model.head(head_input),
            "target_features": target["taps"],
            "target_pooled": pooled,
        }
        if model.source_head is not None:
            values["source_head_logits"] = model.source_head(pooled)
        if names & SOURCE_FORWARD_VALUES:
            source = model.source_backbone(x, training=False)
            values["source_features"] = {k: ops.stop_gradient(v) for k, v in source["taps"].items()}
            values["source_pooled"] = ops.stop_gradient(source["features"])
            if "source_logits" in names:
                if model.frozen_source_head is None:
                    raise ValueError("Expected a source ending in a Dense classifier for 'source_logits'.")
                values["source_logits"] = ops.stop_gradient(model.frozen_source_head(values["source_pooled"]))
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
        for key, variable, source_variable in self.weight_items():
            target[key] = variable.value
            if source_variable is not None:
                counterpart[key] = source_variable.value
        return {"target_weights": target, "source_weights": counterpart}

    def weight_items(self):
        """`[(key, trainable target variable, its frozen source counterpart or None)]` (see `weight_values`)."""
        model = self.model
        source_by_key = {}
        if model.source_backbone is not None:
            source_by_key.update(keyed_variables("backbone", model.source_backbone))
        if model.frozen_source_head is not None:
            source_by_key.update(keyed_variables("source_head", model.frozen_source_head))
        parts = [("backbone", model.target_backbone), ("head", model.head)]
        if model.source_head is not None:
            parts.append(("source_head", model.source_head))
        items = []
        for prefix, part in parts:
            for key, variable in keyed_variables(prefix, part).items():
                if variable.trainable:
                    items.append((key, variable, source_by_key.get(key)))
        return items

    def terms(self, values, regularizers=None):
        """`{name: scalar}` for each regularizer (default: the active ones), given the step values."""
        regs = self.active if regularizers is None else regularizers
        return {reg.name: reg(*[values[k] for k in reg.inputs]) for reg in regs}

    # ------------------------------------------------------------------ what the trainers call

    def forward(self, x, y, sample_weight, training, regularizers):
        """One forward pass: the logits, J (Keras' `compute_loss`: compiled loss + layer losses) and
        the terms of `regularizers`, their inputs computed once."""
        values = self.step_values(x, y, training=training, names=self.needed_values(regularizers))
        logits = values["logits"]
        empirical = self.model.compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight, training=training)
        return Forward(logits, empirical, self.terms(values, regularizers))

    def weight_terms(self, regularizers):
        """`{name: scalar}` of terms that depend on the weights alone: no pass through the network."""
        return self.terms(self.weight_values(), regularizers)

    def logs(self, x, y, y_pred, sample_weight, empirical, terms, stats=None):
        """Updates every tracker (J + ΣΩ, J, each term, the rule's stats, the compiled metrics) and
        returns the step's logs, of the active terms only."""
        model = self.model
        batch = ops.shape(y_pred)[0]
        total = empirical
        for value in terms.values():
            total = total + value
        model.loss_trackers["loss"].update_state(total, sample_weight=batch)
        model.loss_trackers["empirical_loss"].update_state(empirical, sample_weight=batch)
        for name, value in terms.items():
            model.reg_trackers[name].update_state(value, sample_weight=batch)
        for name, value in (stats or {}).items():
            model.rule_trackers[name].update_state(value)
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
        hidden = {f"reg/{r.name}" for r in self.regularizers if r.name not in terms}
        if stats is None:
            hidden |= {m.name for m in model.rule_trackers.values()}
        return {k: v for k, v in logs.items() if k not in hidden}

    # ------------------------------------------------------------------ building

    def build(self, input_shape):
        """Builds the regularizers' own weights now (never inside a traced step)."""
        pending = [r for r in self.regularizers if not r.built]
        if not pending:
            return
        x = keras.KerasTensor((None,) + tuple(input_shape[1:]), dtype="float32")
        names = self.needed_values(pending) - WEIGHT_VALUES
        values = self.step_values(x, keras.KerasTensor((None,), dtype="int32"), names=names)
        for reg in pending:
            if reg.depends_on_weights_only:
                reg.build()
            else:
                reg(*[values[k] for k in reg.inputs])


def keyed_variables(prefix, part):
    """`{"<prefix>/<key>": variable}` of a model (keys of `named_variables`) or of one layer."""
    if isinstance(part, keras.Model):
        return {f"{prefix}/{key}": v for key, v in named_variables(part).items()}
    return {f"{prefix}/{suffix}": v for suffix, v in layer_variable_keys(part)}
