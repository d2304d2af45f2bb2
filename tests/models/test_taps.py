"""No silent no-op: feature-map terms without taps, string taps and subclassed sources are errors that say what to do."""

import logging

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl import regularizers
from keras_tl.backbones.cifar_resnet import cifar_resnet_taps
from keras_tl.models.taps import check_taps_argument
from tests.conftest import tiny_data, tiny_source


def unnamed_source():
    """`tiny_source()` under a name no backbone has: no default taps."""
    source = tiny_source()
    return keras.Model(source.inputs, source.outputs, name="my_net")


NO_TAPS = r"read tapped feature maps, but there are no taps: they would add nothing. Received: taps=\[\] for source 'my_net'"


@pytest.mark.parametrize(
    "terms, names",
    [
        (lambda: [regularizers.FeatureMapDistillation()], ["feature_map_distillation"]),
        (lambda: [regularizers.DELTA(channel_weights="uniform")], ["delta"]),
        (lambda: [regularizers.AST(), regularizers.ACT(), regularizers.L2(scope="head")], ["ast", "act"]),
        (lambda: [regularizers.SPA(), regularizers.GCA()], ["spa", "gca"]),
    ],
    ids=["knowdist", "delta", "afa", "spa_gca"],
)
@pytest.mark.parametrize("taps", [None, []])
def test_a_feature_map_term_without_taps_is_an_error_naming_it(terms, names, taps):
    with pytest.raises(ValueError, match=r"Regularizer\(s\) " + repr(names).replace("[", r"\[").replace("]", r"\]") + " " + NO_TAPS) as info:
        keras_tl.TransferModel(unnamed_source(), 3, taps=taps, regularizers=terms())
    message = str(info.value)
    assert "Pass taps=[layer names] to TransferModel" in message
    assert "conv4_block1_2_conv" in message  # the candidate layers are listed


def test_a_term_without_taps_on_a_known_backbone_uses_and_logs_its_default_taps(caplog):
    with caplog.at_level(logging.INFO, logger="keras_tl.models.taps"):
        model = keras_tl.TransferModel(tiny_source(), 3, regularizers=[regularizers.FeatureMapDistillation()])
    assert model.taps == cifar_resnet_taps(8)
    assert "taps default to" in caplog.text and "'cifar_resnet8'" in caplog.text
    x, y = tiny_data()
    model.target_backbone.get_layer(model.taps[0]).kernel.assign(
        keras.ops.convert_to_numpy(model.target_backbone.get_layer(model.taps[0]).kernel) + 0.1
    )
    objective = model.objective
    assert float(objective.terms(objective.step_values(x, y))["feature_map_distillation"]) > 0.0


def test_without_a_feature_term_a_model_source_keeps_no_taps():
    assert keras_tl.TransferModel(tiny_source(), 3, regularizers=[regularizers.L2SP()]).taps == []


def test_a_string_of_taps_is_refused_not_split_into_characters():
    expected = r"Expected taps to be a list of layer names. Received: taps='conv1_conv', a string .* Pass taps=\['conv1_conv'\]"
    with pytest.raises(ValueError, match=expected):
        keras_tl.TransferModel(tiny_source(), 3, taps="conv1_conv", regularizers=[regularizers.FeatureMapDistillation()])
    with pytest.raises(ValueError, match=expected):
        keras_tl.methods.resolve_taps(tiny_source(), "conv1_conv")
    with pytest.raises(ValueError, match=r"Expected taps to be a list of layer names \(strings\). Received: taps=\[1\]"):
        check_taps_argument([1])
    assert check_taps_argument(("a", "b")) == ["a", "b"]


def test_delta_s_channel_attention_without_taps_says_how_to_pass_them():
    x, y = tiny_data()
    with pytest.raises(ValueError, match=r"DELTA's channel attention .* there are none. Received: taps=\[\]. Pass taps=\[layer names of source 'my_net'\]"):
        keras_tl.channel_weights.delta_channel_weights(unnamed_source(), 3, x, y, taps=[])


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 3, name="conv")
        self.pool = keras.layers.GlobalAveragePooling2D()

    def call(self, x):
        return self.pool(self.conv(x))


def test_a_subclassed_source_is_refused_saying_sources_must_be_functional():
    source = Subclassed(name="my_subclassed")
    source(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(TypeError, match=r"Expected a functional source: .* Received: source 'my_subclassed' of class Subclassed, a subclassed model"):
        keras_tl.TransferModel(source, 3, regularizers=[regularizers.L2SP()])


def test_known_taps_of_names_and_models():
    assert keras_tl.backbones.known_taps("cifar_resnet20") == cifar_resnet_taps(20)
    assert keras_tl.backbones.known_taps(tiny_source()) == cifar_resnet_taps(8)
    assert keras_tl.backbones.known_taps(unnamed_source()) == []
    assert keras_tl.backbones.known_taps("no_such_backbone") == []
