import keras
import numpy as np
import pytest

from keras_tl.backbones.cifar_resnet import cifar_resnet
from keras_tl.utils.weights import copy_weights


def test_copy_is_exact_and_shares_no_buffer():
    source, target = cifar_resnet(8, (8, 8, 3)), cifar_resnet(8, (8, 8, 3))
    copy_weights(source, target)
    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    target.weights[0].assign(np.zeros(target.weights[0].shape, "float32"))
    assert np.any(keras.ops.convert_to_numpy(source.weights[0]) != 0)


def test_architecture_mismatch_names_every_weight():
    source = cifar_resnet(8, (8, 8, 3))
    target = cifar_resnet(14, (8, 8, 3), include_top=True, classes=4)
    before = [keras.ops.convert_to_numpy(w) for w in target.weights]
    with pytest.raises(ValueError) as info:
        copy_weights(source, target, source_name="checkpoint", target_name="model")
    message = str(info.value)
    # Block 2 of each stage (2 convs + 2 BatchNorms of 4 variables: 10) and the classifier (2).
    assert "Missing in checkpoint (32): " in message
    for key in ("conv2_block2_1_conv/kernel", "conv4_block2_2_bn/moving_variance", "predictions/kernel"):
        assert key in message
    for value, old in zip(target.weights, before, strict=True):  # nothing was written
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(value), old)


def test_shape_mismatch_and_skip():
    source = cifar_resnet(8, (8, 8, 3), include_top=True, classes=5)
    target = cifar_resnet(8, (8, 8, 3), include_top=True, classes=3)
    with pytest.raises(ValueError, match=r"Shape mismatches \(2\): \['predictions/bias: source shape \(5,\) != target shape \(3,\)'"):
        copy_weights(source, target)
    copy_weights(source, target, skip=["predictions"])  # the usual dont_load: the head
