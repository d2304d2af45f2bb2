"""The cool-down that scores `keras_tl.select`'s rung before the last: the run's rate annealed to 0 first.

Why: a rung stops each candidate's run mid-schedule, where the cosine rate is still high
(76 % of its peak at epoch 13 of 40) and the validation top-1 of a weakly anchored run
swings from epoch to epoch, while a strong pull to the source keeps it steady. On
Caltech-101 (seeds 1 and 2) the rung before the last ranked KnowDist above LP-FT there,
and KnowDist then lost to L2 on the full run, where LP-FT beat it (docs/benchmarks/notes.md,
`benchmarks/select_cooldown.py`). Scoring after a short linear decay of the rate to 0 is
the "decay" phase of warmup-stable-decay schedules (Hägele et al., "Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations", 2024): a short anneal shows
what the run would reach if it ended there.

The cool-down branches off the run: the candidate's checkpoint on disk stays that of the
rung's epoch (the next rung continues from it, never from the annealed weights), and the
model it trains is only scored. It continues with the run's own optimizer (momentum, a
wrapper's state: FTP's γ, Auto-RGN's scales), its rate replaced by `LinearCooldown`; the
method's callbacks are not run in it (a stage switch scheduled inside the cool-down is not
made: the model keeps the rung's stage).
"""

import keras
from keras import ops

from keras_tl import fine_tuning
from keras_tl.api_export import keras_tl_export
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.selection.LinearCooldown")
@keras.saving.register_keras_serializable(package="keras_tl")
class LinearCooldown(keras.optimizers.schedules.LearningRateSchedule):
    """η(t) = η0 · clip(1 − (t − t0) / T, 0, 1): from `initial_learning_rate` at step `start_step`
    linearly to 0 over `decay_steps` steps (the last of them at η0 / T), 0 after.

    Example:
    >>> schedule = keras_tl.selection.LinearCooldown(0.01, start_step=1196, decay_steps=92)
    >>> float(schedule(1196)), float(schedule(1242))  # (0.01, 0.005)
    """

    def __init__(self, initial_learning_rate, start_step, decay_steps):
        self.initial_learning_rate = check_number("initial_learning_rate", initial_learning_rate, minimum=0)
        self.start_step = check_number("start_step", start_step, minimum=0, integer=True)
        self.decay_steps = check_number("decay_steps", decay_steps, minimum=1, integer=True)

    def __call__(self, step):
        done = (ops.cast(step, "float32") - float(self.start_step)) / float(self.decay_steps)
        return self.initial_learning_rate * ops.clip(1.0 - done, 0.0, 1.0)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "start_step": self.start_step,
            "decay_steps": self.decay_steps,
        }


def cool_down(model, train, steps, epoch, distribute="none", verbose=0):
    """Trains `model` (a compiled run stopped at `epoch`) `steps` more steps, its rate falling from
    the schedule's current value to 0 (`LinearCooldown`); returns the `History`.

    `train`: the run's training split (its per-epoch shuffling is that of `epoch`, as the
    run's next epoch would see it). `distribute`: the run's `keras_tl.distribute.scope` name.
    `NaNGuard` raises `FloatingPointError` on divergence.
    """
    from keras_tl import distribute as distribute_module  # imports tf.distribute: on first use only

    steps = check_number("steps", steps, minimum=1, integer=True)
    optimizer = model.optimizer
    start = int(ops.convert_to_numpy(optimizer.iterations))
    rate = float(ops.convert_to_numpy(optimizer.learning_rate))  # the run's schedule, evaluated now
    optimizer.learning_rate = LinearCooldown(rate, start, steps)
    with distribute_module.scope(distribute):
        # Compiling again makes `fit` trace a new step with the new schedule; the optimizer and
        # its state are the run's own.
        model.compile(optimizer=optimizer, loss=fine_tuning.classification_loss(train), metrics=["accuracy"])
        return model.fit(
            train.dataset,
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps,
            callbacks=fine_tuning.training_callbacks(train),
            shuffle=False,
            verbose=verbose,
        )
