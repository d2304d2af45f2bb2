import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import StagedRegularization
from keras_tl.regularizers import ACT, AST, GCA, L2, SPA
from keras_tl.utils.weights import named_variables
from tests.conftest import TAPS, compile_sgd, tiny_data, tiny_source


def values(part):
    return {key: keras.ops.convert_to_numpy(v) for key, v in named_variables(part).items()}


def attention(reg):
    return [keras.ops.convert_to_numpy(v) for v in reg.trainable_weights]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def assert_backbones_equal(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


class Recorder(keras.callbacks.Callback):
    """Placed after `StagedRegularization`: sees each stage switch right after it happened."""

    def __init__(self, staged, regs):
        super().__init__()
        self.staged, self.regs = staged, regs
        self.epoch_keys, self.batch_keys, self.at_epoch, self.at_switch = [], [], {}, {}

    def snapshot(self):
        return {
            "target": values(self.model.target_backbone),
            "source": values(self.model.source_backbone),
            **{reg.name: attention(reg) for reg in self.regs},
        }

    def on_train_begin(self, logs=None):
        self.initial = self.snapshot()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.at_epoch[epoch] = self.snapshot()  # variables are in sync at epoch boundaries on JAX too

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) in self.staged.switched_at:
            self.at_switch = self.snapshot()  # the staged callback synced the JAX state

    def on_train_batch_end(self, batch, logs=None):
        self.batch_keys.append({k for k in logs if k.startswith("reg/")})

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_keys.append({k for k in logs if k.startswith("reg/")})


def test_ast_to_act_at_an_epoch_inside_one_fit():
    ast, act = AST(relative=False, alpha=0.01), ACT(relative=False, alpha=0.01)
    model = compile_sgd(keras_tl.TransferModel(tiny_source(), 3, taps=TAPS, regularizers=[ast, act]), lr=0.01)
    staged = StagedRegularization([["ast"], ["act"]], switch_at=2)
    recorder = Recorder(staged, [ast, act])
    x, y = tiny_data(8)
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[staged, recorder]).history

    assert staged.switched_at == [(2, 0)] and [a.name for a in model.objective.active] == ["act"]
    assert recorder.epoch_keys == [{"reg/ast"}, {"reg/ast"}, {"reg/act"}]
    assert len(history["reg/ast"]) == 2 and len(history["reg/act"]) == 1
    switch, initial, end = recorder.at_epoch[2], recorder.initial, recorder.snapshot()
    # Eq. 11-12: at the switch the source holds the stage-1 target, then stays frozen.
    assert_backbones_equal(switch["source"], switch["target"])
    assert_backbones_equal(end["source"], switch["target"])
    assert not same(switch["target"].values(), initial["target"].values())  # the target did train
    # ACT: untouched while inactive, re-initialised at the switch, then trained.
    assert same(recorder.at_epoch[1]["act"], initial["act"])
    assert not same(switch["act"], initial["act"])
    assert not same(end["act"], switch["act"])
    # AST: trained in stage 1, frozen once inactive (zero gradient, no momentum).
    assert not same(switch["ast"], initial["ast"]) and same(end["ast"], switch["ast"])


def test_spa_to_gca_mid_epoch_with_dtnh_and_a_new_learning_rate():
    spa, gca, l2 = SPA(relative=False, alpha=0.01), GCA(relative=False, alpha=0.01), L2(beta=0.01)
    model = keras_tl.TransferModel(
        tiny_source(), 3, taps=TAPS, regularizers=[spa, gca, l2], gradient_rule=keras_tl.gradients.DTNH()
    )
    compile_sgd(model, lr=0.01)
    staged = StagedRegularization([["spa", "l2"], ["gca", "l2"]], switch_at=0.25, learning_rates=[0.05])
    recorder = Recorder(staged, [spa, gca])
    x, y = tiny_data(16)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[staged, recorder])

    # 8 steps in all: a quarter of training ends after step 2 of epoch 0.
    assert staged.switched_at == [(0, 2)]
    assert recorder.batch_keys == [{"reg/spa", "reg/l2"}] * 2 + [{"reg/gca", "reg/l2"}] * 6
    switch, end = recorder.at_switch, recorder.snapshot()
    assert_backbones_equal(switch["source"], switch["target"])
    assert_backbones_equal(end["source"], switch["target"])
    assert not same(switch["target"].values(), recorder.initial["target"].values())
    assert not same(switch["gca"], recorder.initial["gca"]) and not same(end["gca"], switch["gca"])
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.05)


def test_without_sync_or_reinitialization_the_source_and_attention_stay():
    ast, act = AST(relative=False, alpha=0.01), ACT(relative=False, alpha=0.01)
    model = compile_sgd(keras_tl.TransferModel(tiny_source(), 3, taps=TAPS, regularizers=[ast, act]), lr=0.01)
    staged = StagedRegularization([["ast"], ["act"]], switch_at=1, sync_source=False, reinitialize=False)
    recorder = Recorder(staged, [ast, act])
    x, y = tiny_data(4)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[staged, recorder])
    assert_backbones_equal(recorder.at_epoch[1]["source"], recorder.initial["source"])
    assert same(recorder.at_epoch[1]["act"], recorder.initial["act"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stages": [["a"]]}, r"Expected stages to be a list of at least two lists"),
        ({"stages": [["a"], ["b"]], "switch_at": [1, 2]}, r"Expected 1 switch point\(s\)"),
        ({"stages": [["a"], ["b"]], "switch_at": 1.5}, r"Received: switch_at=1.5"),
        (
            {"stages": [["a"], ["b"]], "learning_rates": [0.1, 0.2]},
            r"one positive learning rate per switch \(1\)",
        ),
    ],
)
def test_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StagedRegularization(**kwargs)


def test_schedule_errors_surface_before_training():
    x, y = tiny_data(4)
    model = compile_sgd(keras_tl.TransferModel(tiny_source(), 3, taps=TAPS, regularizers=[L2()]))
    with pytest.raises(ValueError, match=r"keep_source=True"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[StagedRegularization([["l2"], []], switch_at=1)])
    later_typo = StagedRegularization([["l2"], ["ast"]], sync_source=False)
    with pytest.raises(
        ValueError, match=r"Received unknown names: \['ast'\]"
    ):  # every stage, before training
        model.fit(x, y, epochs=1, verbose=0, callbacks=[later_typo])
    stages = StagedRegularization([["l2"], [], ["l2"]], switch_at=[0.5, 1], sync_source=False)
    with pytest.raises(ValueError, match=r"Expected increasing switch points"):
        model.fit(x, y, epochs=4, verbose=0, callbacks=[stages])  # 0.5 of 4 epochs is after epoch 1
