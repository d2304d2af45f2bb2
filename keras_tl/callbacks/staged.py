"""Two-stage (or more) regularization inside one `fit`: AST→ACT (AFA), SPA→GCA (Kang & Kang)."""

import math

import keras

from keras_tl.api_export import keras_tl_export

_TOLERANCE = 1e-9


def _check_switch(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 1 if isinstance(value, int) else 0.0 < value < 1.0


@keras_tl_export("keras_tl.callbacks.StagedRegularization")
class StagedRegularization(keras.callbacks.Callback):
    """Switches a `TransferModel`'s active regularizers at given epochs or fractions of training.

    Stage k trains with the regularizers named in `stages[k]` (`TransferModel.
    set_active_regularizers`, which rebuilds the train/test steps: both Keras `fit` loops
    re-read the step function every step, so the switch happens inside one `fit` on
    TensorFlow and JAX). At each switch, in this order:

    1. `sync_source`: the target's current backbone (and upstream head) weights are copied
       into the frozen source copy (Eq. 11-12: "the weights from the target model trained
       in the first stage are sent back to the source model"). The model must have a
       source copy (a regularizer that needs it, or `keep_source=True`).
    2. `reinitialize`: the attention layers of the regularizers that become active are
       drawn afresh ("only the weights of the GCA submodule are initialized randomly").
    3. `learning_rates[k]`: the optimizer's learning rate is set (it must be a float,
       not a schedule).

    Timing: an int in `switch_at` is an epoch index (the stage starts at the beginning of
    that epoch); a float in (0, 1) is a fraction of all training steps (epochs × steps
    per epoch), and the switch happens before the first step at or past it, mid-epoch if
    need be. When the number of steps per epoch is unknown, a fraction is rounded up to
    the next epoch boundary. Under JAX the model's variables are synced with the training
    state (`model.jax_state_sync()`) before a mid-epoch switch touches them; the fit loop
    then re-reads them. After `fit`, the last stage stays active; a new `fit` with this
    callback starts again at stage 0.

    Restarts: the stage lives in the model's `regularization_stage` variable, which
    `keras.callbacks.BackupAndRestore` checkpoints with the weights. A `fit` whose first
    epoch is not 0 is a resumed one (`BackupAndRestore` restored the weights and set the
    initial epoch, or the caller passed `initial_epoch`): the callback then continues in
    the stored stage, with no sync and no re-initialisation, since the checkpoint already
    holds the synced source copy, the trained attention layers and the learning rate;
    switches due later (or due before the resumed epoch but not yet recorded) happen as
    usual. Resumed runs match uninterrupted ones with epoch checkpoints (`save_freq=
    "epoch"`); Keras re-runs a partly done epoch from its start, so batch checkpoints
    cannot. A `fit` starting at epoch 0 is a fresh one and starts at stage 0.

    Reference:
        Kang & Kang, "Deep Transfer Learning Method Using Self-Pixel and Global Channel
        Attentive Regularization", 2024, Sec. 3.3, Eq. 11-12, Table 7 (SPA→GCA, half the
        iterations each); Xie et al., AFA, Neural Networks 2021 (AST→ACT, half the epochs each).

    Args:
        stages: list of at least two lists of regularizer names (an empty list is a stage
            without regularization), in order.
        switch_at: one switch point per stage after the first (a single value for two
            stages): ints are epochs, floats in (0, 1) fractions of training; increasing.
        sync_source: copy the target backbone into the source copy at each switch.
        reinitialize: re-initialise the attention layers of newly active regularizers.
        learning_rates: None, or one learning rate per switch.

    Example:
    >>> model = keras_tl.TransferModel(
    ...     source, 10, taps=taps, keep_source=True,
    ...     regularizers=[keras_tl.regularizers.SPA(0.01), keras_tl.regularizers.GCA(0.01),
    ...                   keras_tl.regularizers.L2(0.01, scope="head")])
    >>> model.fit(ds, epochs=30, callbacks=[keras_tl.callbacks.StagedRegularization(
    ...     [["spa", "l2"], ["gca", "l2"]], switch_at=0.5)])
    """

    def __init__(self, stages, switch_at=0.5, sync_source=True, reinitialize=True, learning_rates=None):
        super().__init__()
        if (
            not isinstance(stages, (list, tuple))
            or len(stages) < 2
            or not all(isinstance(s, (list, tuple)) and all(isinstance(n, str) for n in s) for s in stages)
        ):
            raise ValueError(
                "Expected stages to be a list of at least two lists of regularizer names. "
                f"Received: stages={stages!r}"
            )
        self.stages = [list(stage) for stage in stages]
        switches = list(switch_at) if isinstance(switch_at, (list, tuple)) else [switch_at]
        if len(switches) != len(stages) - 1 or not all(_check_switch(s) for s in switches):
            raise ValueError(
                f"Expected {len(stages) - 1} switch point(s): ints >= 1 (epochs) or floats in (0, 1) "
                f"(fractions of training). Received: switch_at={switch_at!r}"
            )
        self.switch_at = switches
        if learning_rates is not None:
            learning_rates = list(learning_rates)
            if len(learning_rates) != len(switches) or not all(
                isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0 for lr in learning_rates
            ):
                raise ValueError(
                    f"Expected one positive learning rate per switch ({len(switches)}). "
                    f"Received: learning_rates={learning_rates!r}"
                )
        self.learning_rates = learning_rates
        self.sync_source = bool(sync_source)
        self.reinitialize = bool(reinitialize)
        self.stage = 0
        self.switched_at = []

    # ------------------------------------------------------------------ schedule

    def on_train_begin(self, logs=None):
        model = self.model
        if not hasattr(model, "set_active_regularizers"):
            raise TypeError(
                f"Expected a keras_tl.TransferModel. Received: model of type {type(model).__name__}"
            )
        known = [r.name for r in model.regularizers]
        unknown = sorted({n for stage in self.stages for n in stage} - set(known))
        if unknown:
            raise ValueError(
                f"Expected names of this model's regularizers {known}. Received unknown names: {unknown}"
            )
        if self.sync_source and model.source_backbone is None:
            raise ValueError(
                "Expected a TransferModel with a frozen source copy for sync_source=True: build it with "
                "keep_source=True (or a regularizer that needs the source)."
            )
        epochs = self.params.get("epochs") or 1
        self._steps = self.params.get("steps")
        # Switch points in epochs (float): fractions scale with the length of training.
        self._points = [float(s) if isinstance(s, int) else s * epochs for s in self.switch_at]
        if any(b <= a for a, b in zip(self._points, self._points[1:], strict=False)):
            raise ValueError(
                f"Expected increasing switch points. Received: switch_at={self.switch_at!r} "
                f"(in epochs: {self._points})"
            )
        self.stage = 0
        self.switched_at = []
        self._epoch = 0
        self._first_epoch = True
        # The stage variable is left alone here: `BackupAndRestore` may sit before this
        # callback and have restored it already; the first epoch index tells which case it is.
        model.set_active_regularizers(self.stages[0])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._first_epoch:
            self._first_epoch = False
            if epoch > 0:
                self._resume()
            else:
                self.model.regularization_stage.assign(0)
        self._advance(float(epoch), epoch, 0)

    def _resume(self):
        stage = int(keras.ops.convert_to_numpy(self.model.regularization_stage))
        if not 0 <= stage < len(self.stages):
            raise ValueError(
                f"Expected the model's regularization_stage to index one of the {len(self.stages)} stages "
                f"when resuming. Received: regularization_stage={stage}"
            )
        # The restored checkpoint was written after the switches into `stage`: replaying them
        # would sync the source from later weights and redraw trained attention layers.
        self.stage = stage
        self.model.set_active_regularizers(self.stages[stage])

    def on_train_batch_begin(self, batch, logs=None):
        if self._steps:
            self._advance(self._epoch + batch / self._steps, self._epoch, batch)

    def _advance(self, progress, epoch, batch):
        while self.stage < len(self._points) and progress + _TOLERANCE >= self._due(self._points[self.stage]):
            self._switch(epoch, batch)

    def _due(self, point):
        # Without a known epoch length, a switch can only happen at an epoch boundary.
        return point if self._steps else math.ceil(point - _TOLERANCE)

    # ------------------------------------------------------------------ the switch

    def _switch(self, epoch, batch):
        model = self.model
        if keras.backend.backend() == "jax":
            # Mid-epoch under JAX the variables only live in the training state: write it
            # back first; the fit loop re-reads the variables before its next step.
            model.jax_state_sync()
        previous = set(self.stages[self.stage])
        self.stage += 1
        if self.sync_source:
            model.sync_source_from_target()
        if self.reinitialize:
            for reg in model.regularizers:
                if (
                    reg.name in self.stages[self.stage]
                    and reg.name not in previous
                    and hasattr(reg, "reinitialize")
                ):
                    reg.reinitialize()
        if self.learning_rates is not None:
            model.optimizer.learning_rate = self.learning_rates[self.stage - 1]
        model.set_active_regularizers(self.stages[self.stage])
        model.regularization_stage.assign(self.stage)
        self.switched_at.append((epoch, batch))

    def get_config(self):
        return {
            "stages": self.stages,
            "switch_at": self.switch_at,
            "sync_source": self.sync_source,
            "reinitialize": self.reinitialize,
            "learning_rates": self.learning_rates,
        }
