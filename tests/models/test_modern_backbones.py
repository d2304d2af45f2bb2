"""Modern backbones as sources: auto-named variables (ConvNeXt) and nested attention blocks (ViT)."""

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.regularizers import DELTA, L2SP, FeatureMapDistillation
from keras_tl.utils.weights import named_variables
from tests.conftest import compile_sgd, on_backend


@keras.saving.register_keras_serializable(package="keras_tl_tests")
class EncoderBlock(keras.layers.Layer):
    """A pre-norm transformer block as keras-hub writes them: sublayers auto-named inside one layer."""

    def __init__(self, heads=2, key_dim=8, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.key_dim = heads, key_dim
        self.norm1 = keras.layers.LayerNormalization()
        self.attention = keras.layers.MultiHeadAttention(heads, key_dim)
        self.norm2 = keras.layers.LayerNormalization()
        self.mlp = keras.layers.Dense(heads * key_dim, activation="gelu")

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.mlp.build(input_shape)
        self.built = True

    def call(self, x):
        y = self.norm1(x)
        x = x + self.attention(y, y)
        return x + self.mlp(self.norm2(x))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim}


def small_vit(classes=5):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 4, strides=4, name="patches")(inputs)
    x = keras.layers.Reshape((16, 16), name="tokens")(x)
    x = EncoderBlock(name="encoder_0")(x)
    x = keras.layers.MultiHeadAttention(2, 8, name="top_level_attention")(x, x)
    x = EncoderBlock(name="encoder_1")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="predictions")(x), name="small_vit")


SOURCES = {
    "convnext_tiny": (
        lambda: keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), include_top=False),
        "convnext_tiny_stage_1_block_0_depthwise_conv",
    ),
    "efficientnetv2_b0": (
        lambda: keras.applications.EfficientNetV2B0(weights=None, input_shape=(32, 32, 3), include_top=False),
        "block2a_project_bn",
    ),
    "densenet121": (
        lambda: keras.applications.DenseNet121(weights=None, input_shape=(32, 32, 3), include_top=False),
        "conv2_block1_1_conv",
    ),
    "small_vit": (small_vit, "encoder_0"),
}


def numpy_variables(part):
    return {k: keras.ops.convert_to_numpy(v) for k, v in named_variables(part).items()}


# DenseNet121 and EfficientNetV2-B0 took 60-100 s each per backend, nearly all of it compiling their
# train steps (30-100 s; 3 s eager): they train eagerly on TensorFlow (JAX's eager dispatch is slower
# than its compile), while ConvNeXt (auto-named variables) and the small ViT train compiled on both.
ONE_BACKEND = {"densenet121": "tensorflow", "efficientnetv2_b0": "tensorflow"}
CASES = [pytest.param(name, marks=on_backend(ONE_BACKEND[name])) if name in ONE_BACKEND else name for name in SOURCES]


@pytest.mark.parametrize("name", CASES)
def test_a_modern_source_trains_with_l2_sp_and_a_tapped_delta_and_round_trips(name, tmp_path):
    build, tap = SOURCES[name]
    keras.utils.set_random_seed(0)
    source = build()
    channels = source.get_layer(tap).output.shape[-1]
    delta = DELTA(relative=False, alpha=1e-3, channel_weights={tap: [1.0 / channels] * channels})
    model = keras_tl.TransferModel(source, 3, taps=[tap], regularizers=[L2SP(alpha=0.01), delta])
    # Keys are unique and pair every trainable target variable with its frozen copy.
    weights = model.objective.weight_values()
    assert set(weights["source_weights"]) == {k for k in weights["target_weights"] if not k.startswith("head/")}
    shapes = [{k: tuple(v.shape) for k, v in named_variables(part).items()} for part in (model.source_backbone, model.target_backbone)]
    assert shapes[0] == shapes[1]
    source_before = numpy_variables(model.source_backbone)
    for key, value in numpy_variables(model.target_backbone).items():  # the copy is exact
        np.testing.assert_array_equal(value, source_before[key], err_msg=key)

    compile_sgd(model, lr=0.01)
    model.run_eagerly = name in ONE_BACKEND
    shape = tuple(source.inputs[0].shape[1:])
    x = np.random.default_rng(0).uniform(0, 1, (2,) + shape).astype("float32")
    history = model.fit(x, np.array([0, 2]), batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["reg/delta"][0] >= 0.0
    moved = [k for k, v in numpy_variables(model.target_backbone).items() if not np.array_equal(v, source_before[k])]
    assert moved
    for key, value in numpy_variables(model.source_backbone).items():
        np.testing.assert_array_equal(value, source_before[key], err_msg=key)

    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(  # eager calls: a predict function costs a compile per model
        keras.ops.convert_to_numpy(restored(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5, atol=1e-5,
    )

    with pytest.raises(ValueError, match=r"Unknown tap layer\(s\) \['no_such_layer'\].*available layers: \[.*" + tap):
        keras_tl.TransferModel(source, 3, taps=["no_such_layer"], regularizers=[FeatureMapDistillation()])


def test_keys_of_nested_attention_blocks_are_positional_and_readable():
    keys = list(named_variables(small_vit()))
    assert "encoder_0/kernel[2]" in keys and "top_level_attention/bias[1]" in keys
    assert "patches/kernel" in keys and "predictions/bias" in keys  # plain layers keep their names
    assert len(keys) == len(set(keys))
