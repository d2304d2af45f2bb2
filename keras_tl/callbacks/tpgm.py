"""TPGM: per-variable projection radii learned on held-out batches, projection after every step."""

import functools

import keras
import numpy as np
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.projection import check_norm, clip_radius, distance_norms, initial_radius, project
from keras_tl.trainers import compile_function
from keras_tl.utils.batches import NumpyBatches, forever
from keras_tl.utils.validation import check_number
from keras_tl.utils.weights import named_variables


class _ProjectedClassifier(keras.Model):
    """The classifier evaluated at θ̃(γ) = θ0 + min(1, γ/‖θ − θ0‖)(θ − θ0); its only trainable weights are γ.

    Keras' own `train_on_batch` then takes the gradient of the held-out loss in γ and the
    Adam step, compiled, on every backend. θ, θ0 and the classifier's other variables
    (BatchNorm statistics) are copies held as this model's non-trainable variables: under
    JAX a compiled step sees only the state it is passed, and the copies keep the step
    from donating the trained model's buffers.
    """

    def __init__(self, classifier, projected, norm):
        super().__init__(name="tpgm_projected_classifier")
        # A bound method, not the model: the classifier's variables must not become ours.
        self._classifier_call = classifier.stateless_call
        self.norm = norm
        self.projected = list(projected)
        trainable = classifier.trainable_variables
        self.radii = [
            self.add_weight(shape=(), initializer="zeros", name=f"radius_{i}") for i in self.projected
        ]
        self.current = [_copy_slot(self, v, "theta") for v in trainable]
        self.state = [_copy_slot(self, v, "state") for v in classifier.non_trainable_variables]
        self.anchors = [_copy_slot(self, trainable[i], "anchor") for i in self.projected]
        self.initialized = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="initialized"
        )
        self.built = True

    def call(self, x):
        values = [v.value for v in self.current]
        for radius, anchor, i in zip(self.radii, self.anchors, self.projected, strict=True):
            values[i] = project(values[i], anchor.value, radius.value, self.norm)
        logits, _ = self._classifier_call(values, [v.value for v in self.state], x, training=False)
        return logits


def _copy_slot(owner, variable, role):
    return owner.add_weight(
        shape=variable.shape,
        dtype=variable.dtype,
        initializer="zeros",
        trainable=False,
        name=f"{role}_{variable.name}",
    )


def _clipped_radii(thetas, anchors, radii, initialized, norm):
    """Each radius (at its first value, `initial_radius`, until `initialized`) clipped to the row norms."""
    clipped = []
    for theta, anchor, radius in zip(thetas, anchors, radii, strict=True):
        norms = distance_norms(ops.subtract(theta, anchor), norm)
        radius = ops.where(initialized > 0, radius, initial_radius(norms))
        clipped.append(clip_radius(radius, norms))
    return clipped


def _projected(thetas, anchors, radii, norm):
    """`(projected values, clipped radii)`: each radius clipped to θ's row norms, then θ projected with it."""
    values, clipped = [], []
    for theta, anchor, radius in zip(thetas, anchors, radii, strict=True):
        radius = clip_radius(radius, distance_norms(ops.subtract(theta, anchor), norm))
        values.append(project(theta, anchor, radius, norm))
        clipped.append(radius)
    return values, clipped


def _assign(variables, values):
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _check_positive_int(name, value):
    return check_number(name, value, minimum=1, integer=True)


@keras_tl_export("keras_tl.callbacks.TPGM")
class TPGM(keras.callbacks.Callback):
    """Trainable Projected Gradient Method: keep each variable within a learned radius of the source.

    After every optimizer step each projected variable θ_l (every trainable variable of
    the classifier except the new head) is projected back into the ball of radius γ_l
    around its pre-trained value θ0_l (the model's frozen source copy when it keeps one,
    `keep_source=True`; else its value when the first `fit` began, the same for a fresh
    `TransferModel`):

        θ_l ← θ0_l + min(1, γ_l / ‖θ_l − θ0_l‖)·(θ_l − θ0_l)      (`keras_tl.projection.project`)

    and every `update_every` steps, before that projection, the radii take
    `update_steps` Adam steps (learning rate `learning_rate`) on the cross-entropy of
    held-out batches through the projected classifier (BatchNorm in inference mode), the
    radii being its only free parameters (the bi-level problem's outer level).

    Reference:
        Tian et al., "Trainable Projected Gradient Method for Robust Fine-tuning",
        CVPR 2023, Sec. 3 (projection, MARS norm) and Sec. 3.3 / Alg. 1 (projection
        update on held-out data, then projection).

    Conventions (PotatoTian/TPGM, `DomainNet_ResNet_Exp/utils/tpgm.py`, `engine_finetune.py`,
    `main_finetune.py`):
    - One scalar γ per trainable tensor (weights, biases and BatchNorm γ/β each), not per
      layer; BatchNorm moving statistics are not projected; the new head is excluded
      (`exclude_list=["head.weight", "head.bias"]`).
    - γ starts, at the first projection update, at half the smallest row norm of θ − θ0
      (`norms.min()/2`); before every use it is clipped to [1e-8, largest row norm]
      (`_clip`); the ratio is `Hardtanh(0, 1)(ReLU(γ)/(‖·‖ + 1e-8))` (`projection_ratio`).
    - The schedule: after optimizer step i of an epoch, if i % proj_freq == 0 the radii
      are updated on `max_iters` held-out batches and then applied, else the current
      radii are applied; so the projection runs after every step. The README's runs use
      `--proj_freq 1` and the default `max_iters` 1: one held-out batch per step.
    - Adam on the radii (`torch.optim.Adam`, lr `proj_lr` 1e-2, betas 0.9/0.999, eps 1e-8),
      its state kept across updates; held-out batches from the validation split
      (`pgm_loader` reads `"val"`), cycled, of the training batch size (64).
    - θ0 is a copy of the model before training (`copy.deepcopy(model)` in `tpgm_trainer`).

    State: the radii, θ0 and Adam's moments are `keras.Variable`s of an internal model,
    built at the first `fit` this callback sees; a later `fit` with the same callback
    continues from them (θ0 is not re-taken). They are not part of the `TransferModel`:
    a run resumed from a checkpoint restarts the radii (at half the smallest row norm)
    and Adam; θ0 is right only with a source copy (`keep_source=True`), else it is taken
    from the restored weights.
    Under JAX the training state is synced into the variables (`model.jax_state_sync()`)
    before the callback reads or writes them; the fit loop re-reads them for its next
    step. The clipping and the projection run as one compiled call each.

    `fit` logs, per epoch, `tpgm/heldout_loss` (mean held-out loss of the epoch's updates)
    and `tpgm/radius` (the mean radius).

    Args:
        validation_data: held-out data for the radii, never the training set: `(x, y)`
            arrays (batched by `batch_size`, reshuffled each pass), a split from
            `keras_tl.data.load`, or a re-iterable of `(x, y)` batches such as a
            `tf.data.Dataset` (re-iterated when exhausted).
        norm: `"mars"` (row sums, the reference default for CNNs) or `"l2"`.
        learning_rate: Adam's learning rate on the radii (`proj_lr`).
        update_every: update the radii after every this many steps (`proj_freq`).
        update_steps: held-out batches (Adam steps) per update (`max_iters`).
        batch_size: held-out batch size for arrays.
        loss: held-out loss on logits (default: sparse categorical cross-entropy).
        seed: of the held-out shuffling.

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> tpgm = keras_tl.callbacks.TPGM(validation_data=(x_val, y_val))
    >>> model.fit(x_train, y_train, epochs=50, callbacks=[tpgm])
    >>> tpgm.radii()  # {"conv1/kernel": 0.43, ...}
    """

    def __init__(
        self,
        validation_data,
        norm="mars",
        learning_rate=1e-2,
        update_every=1,
        update_steps=1,
        batch_size=64,
        loss=None,
        seed=0,
    ):
        super().__init__()
        self.validation_data = validation_data
        self.norm = check_norm(norm)
        self.learning_rate = check_number("learning_rate", learning_rate, minimum=0, exclusive=True)
        self.update_every = _check_positive_int("update_every", update_every)
        self.update_steps = _check_positive_int("update_steps", update_steps)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.loss = keras.losses.get(loss) if isinstance(loss, dict) else loss
        self.seed = check_number("seed", seed, minimum=0, integer=True)
        # Checked now, not at the first step of a long run.
        self._held_out = NumpyBatches(validation_data, self.batch_size, self.seed, name="validation_data")
        self.projected_model = None
        self._targets = None
        self._batches = None

    # ------------------------------------------------------------------ setup

    def on_train_begin(self, logs=None):
        model = self.model
        if not hasattr(model, "inference_model") or not hasattr(model, "head"):
            raise TypeError(
                f"Expected a keras_tl.TransferModel. Received: model of type {type(model).__name__}"
            )
        self._sync()
        if self.projected_model is None:
            self._build(model)
        self._epoch_losses = []

    def _build(self, model):
        classifier = model.inference_model(name="tpgm_classifier")
        head = {id(v) for v in model.head.trainable_variables}
        trainable = classifier.trainable_variables
        projected = [i for i, v in enumerate(trainable) if id(v) not in head]
        if not projected:
            raise ValueError(
                "Expected trainable variables outside the head to project. Received a model whose "
                "backbone does not train (freeze_backbone=True?)"
            )
        self._classifier = classifier
        self._targets = [trainable[i] for i in projected]
        self.projected_model = _ProjectedClassifier(classifier, projected, self.norm)
        self._copy_current()
        for anchor, value in zip(self.projected_model.anchors, self._anchor_values(model), strict=True):
            anchor.assign(ops.copy(value))
        self.projected_model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
            loss=self.loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        self._batches = forever(self._held_out)
        # One compiled call per stage: op by op, 3 ops per variable cost more than the step itself.
        self._clipped_radii = compile_function(functools.partial(_clipped_radii, norm=self.norm))
        self._project = compile_function(functools.partial(_projected, norm=self.norm))

    def _anchor_values(self, model):
        """θ0: the frozen source copy's value of each projected variable if the model keeps one, else its own."""
        if model.source_backbone is None:
            return [v.value for v in self._targets]
        # The source copy is part of the model's weights, so a checkpoint restores it: a
        # resumed run still projects around the source, not around the restored weights.
        source = named_variables(model.source_backbone)
        keys = {id(v): k for k, v in named_variables(model.target_backbone).items()}
        return [source[keys[id(v)]].value for v in self._targets]

    def _sync(self):
        if keras.backend.backend() == "jax":
            # Mid-epoch the variables only live in the training state: write it back first.
            self.model.jax_state_sync()

    def _copy_current(self):
        # Copies (not shared buffers): the radius update's compiled step donates its state.
        wrapper = self.projected_model
        for slot, variable in zip(wrapper.current, self._classifier.trainable_variables, strict=True):
            slot.assign(ops.copy(variable.value))
        for slot, variable in zip(wrapper.state, self._classifier.non_trainable_variables, strict=True):
            slot.assign(ops.copy(variable.value))

    # ------------------------------------------------------------------ the two stages

    def on_train_batch_end(self, batch, logs=None):
        self._sync()
        if batch % self.update_every == 0:
            self._epoch_losses.append(self.update_radii())
        self.apply_projection()

    def update_radii(self):
        """The projection update: `update_steps` Adam steps on the radii; returns the last held-out loss."""
        wrapper = self.projected_model
        self._copy_current()
        loss = None
        for _ in range(self.update_steps):
            # Read again each time: under JAX the compiled step donated the previous buffers.
            thetas = [wrapper.current[i].value for i in wrapper.projected]
            radii = self._clipped_radii(
                thetas, self._values(wrapper.anchors), self._values(wrapper.radii), wrapper.initialized.value
            )
            _assign(wrapper.radii, radii)
            wrapper.initialized.assign(1)
            x, y = next(self._batches)
            loss = float(np.asarray(wrapper.train_on_batch(x, y)))
        return loss

    def apply_projection(self):
        """The projection: every projected variable pulled into its ball (radii clipped first)."""
        wrapper = self.projected_model
        values, radii = self._project(
            self._values(self._targets), self._values(wrapper.anchors), self._values(wrapper.radii)
        )
        _assign(wrapper.radii, radii)
        _assign(self._targets, values)

    @staticmethod
    def _values(variables):
        return [v.value for v in variables]

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._epoch_losses:
            logs["tpgm/heldout_loss"] = float(np.mean(self._epoch_losses))
            logs["tpgm/radius"] = float(np.mean(list(self.radii().values())))
        self._epoch_losses = []

    def radii(self):
        """`{variable path: γ}` for every projected variable (empty before the first `fit`)."""
        if self.projected_model is None:
            return {}
        return {
            v.path: float(ops.convert_to_numpy(r))
            for v, r in zip(self._targets, self.projected_model.radii, strict=True)
        }

    def get_config(self):
        """The hyperparameters (not the held-out data): `TPGM(validation_data, **config)` rebuilds it."""
        return {
            "norm": self.norm,
            "learning_rate": self.learning_rate,
            "update_every": self.update_every,
            "update_steps": self.update_steps,
            "batch_size": self.batch_size,
            "loss": None if self.loss is None else keras.saving.serialize_keras_object(self.loss),
            "seed": self.seed,
        }
