
import keras
import numpy as np
import pytest

from keras_tl import backbones
from tests.conftest import on_backend, only_once, run_python


@pytest.mark.parametrize("name", backbones.CIFAR_NAMES[:3])
def test_cifar_resnets_build_with_their_taps(name):
    model = backbones.build(name, input_shape=(16, 16, 3))
    depth = int(name[len("cifar_resnet"):])
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == depth - 1 + 2  # depth-1 3x3 convs + the two 1x1 shortcut projections
    for tap in backbones.default_taps(name):
        assert isinstance(model.get_layer(tap), keras.layers.Conv2D)
    assert model.output.shape == (None, 64)


@on_backend("tensorflow")  # layer names and ranks; on JAX the eager initializers take 10-20 s a model
@pytest.mark.parametrize("name", ["resnet50", "resnet101", "mobilenet_v3_large", "inception_v3"])
def test_application_taps_exist(name):
    input_shape = (75, 75, 3) if name == "inception_v3" else (64, 64, 3)
    model = backbones.build(name, weights=None, input_shape=input_shape)
    for tap in backbones.default_taps(name):
        assert len(model.get_layer(tap).output.shape) == 4, tap


def test_local_weights_file_round_trip(tmp_path):
    model = backbones.build("cifar_resnet8", input_shape=(8, 8, 3), include_top=True, classes=4)
    path = str(tmp_path / "source.weights.h5")
    model.save_weights(path)
    loaded = backbones.build("cifar_resnet8", weights=path, input_shape=(8, 8, 3), include_top=True, classes=4)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_bad_weights_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Expected weights to be 'imagenet', None or an existing file"):
        backbones.build("cifar_resnet8", weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match=r"has no ImageNet weights. Expected weights=None or a local file"):
        backbones.build("cifar_resnet20", weights="imagenet")
    with pytest.raises(ValueError, match=r"Unknown backbone. Expected one of"):
        backbones.default_taps("vgg16")


OFFLINE_IMAGENET = """
import json, time, keras_tl
start = time.time()
try:
    keras_tl.backbones.build("resnet50", weights="imagenet")
    print(json.dumps({"error": None}))
except OSError as error:
    print(json.dumps({"error": str(error), "seconds": time.time() - start}))
"""


@only_once
def test_offline_imagenet_fails_fast_with_instructions(tmp_path):
    # A fresh KERAS_HOME: no cached weights file can hide the download.
    result = run_python(OFFLINE_IMAGENET, "tensorflow", env={"KERAS_HOME": str(tmp_path)}, timeout=300)
    if result["error"] is None:
        pytest.skip("this machine can download the ImageNet weights (online)")
    assert "weights='/path/to/that_file.h5'" in result["error"]
    assert "offline" in result["error"]
    assert result["seconds"] < 60
