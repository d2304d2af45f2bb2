"""The cool-down that scores the rung before the last: its schedule against a numpy reference, and
that it trains the run's own optimizer at the new rate without touching the run's checkpoint."""

import os

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.selection import LinearCooldown, cool_down
from tests.conftest import TAPS, tiny_source
from tests.selection.test_select import arrays


def linear_to_zero(rate, start, total, step):
    # PyTorch's LinearLR(start_factor=1, end_factor=0, total_iters=T) after `start` steps of another
    # schedule, the decay phase of a warmup-stable-decay schedule: the factor falls by 1/T per step.
    factor = 1.0 - min(max(step - start, 0), total) / total
    return rate * factor


def test_linear_cooldown_against_the_reference_and_its_config_round_trips():
    schedule = LinearCooldown(0.01, start_step=1196, decay_steps=92)
    steps = np.arange(1150, 1300)
    got = np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])
    want = np.array([linear_to_zero(0.01, 1196, 92, int(s)) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert got[steps == 1242][0] == pytest.approx(0.005) and got[-1] == 0.0
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(again, LinearCooldown) and again.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match=r"Received: decay_steps=0"):
        LinearCooldown(0.01, 0, 0)


def test_cool_down_anneals_the_run_s_own_optimizer_and_leaves_its_checkpoint(tmp_path):
    x, y = arrays(n=48)
    train = keras_tl.data.as_split((x, y), batch_size=8, seed=0, name="train")  # 6 steps per epoch
    settings = dict(epochs=4, lr=0.05, taps=TAPS, seed=0, verbose=0, keep_backup=True)

    def at_epoch_2(folder):  # as a rung: the run resumed from the previous rung's checkpoint (epoch 1)
        keras_tl.fine_tune("l2", tiny_source(), train, backup_dir=str(folder), stop_at_epoch=1, **settings)
        return keras_tl.fine_tune("l2", tiny_source(), train, backup_dir=str(folder), stop_at_epoch=2, **settings)[0]

    cooled = at_epoch_2(tmp_path / "run")
    checkpoint = sorted(os.listdir(tmp_path / "run"))
    stamp = {f: os.path.getmtime(tmp_path / "run" / f) for f in checkpoint}
    optimizer = cooled.optimizer
    rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))  # cosine at epoch 2 of 4: lr / 2
    assert rate == pytest.approx(0.025, rel=1e-5)
    cool_down(cooled, train, steps=3, epoch=2)
    assert cooled.optimizer is optimizer and int(keras.ops.convert_to_numpy(optimizer.iterations)) == 12 + 3
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.0  # annealed to 0 after 3 steps
    assert sorted(os.listdir(tmp_path / "run")) == checkpoint  # the run's checkpoint is not rewritten
    assert {f: os.path.getmtime(tmp_path / "run" / f) for f in checkpoint} == stamp

    # The same 3 steps at the run's own cosine rate (no cool-down) end elsewhere: the new rate was used.
    plain = at_epoch_2(tmp_path / "plain")
    plain.fit(train.dataset, initial_epoch=2, epochs=3, steps_per_epoch=3, shuffle=False, verbose=0,
              callbacks=keras_tl.fine_tuning.training_callbacks(train))
    differ = [not np.allclose(a, b) for a, b in zip(cooled.trainable_weights, plain.trainable_weights, strict=True)]
    assert any(differ)
