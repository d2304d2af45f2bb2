"""`keras_tl.fine_tune` on plain data (a `tf.data.Dataset`, `(x, y)` arrays): the weights of the same `load` split."""

import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.testing import tiny_source

# Three digit classes at 8 px, no augmentation, no flip: the images are a function of the data only.
DATA = dict(image_size=8, preprocess="cifar_resnet8", batch_size=8, classes=["5", "6", "7"], per_class=8, flip=False, seed=0)


def in_reading_order():
    """The training examples as arrays, in the order a split with `shuffle_buffer=1` reads them."""
    evaluation = keras_tl.data.load("digits", "train", training=False, **DATA)
    return np.concatenate([x for x, _ in evaluation.dataset.as_numpy_iterator()]), evaluation.labels


def weights_after(method, train, **kwargs):
    model, history = keras_tl.fine_tune(
        method, tiny_source(classes=5), train, epochs=2, lr=0.01, seed=0, verbose=0, **kwargs
    )
    assert len(history.history["loss"]) == 2
    return {v.path: np.array(v) for v in model.weights}


def assert_same_weights(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for path, value in ours.items():
        np.testing.assert_array_equal(value, theirs[path], err_msg=path)


def test_a_dataset_trains_as_the_split_it_holds_delta_measured_on_it(tmp_path):
    """DELTA reads the data before training (channel attention): on the dataset and on the split alike."""
    method = keras_tl.methods.get("delta", head_epochs=1, num_batches=1)
    fixed = keras_tl.data.load("digits", "train", training=True, augment="none", shuffle_buffer=1, **DATA)
    x, y = in_reading_order()
    one_hot = tf.data.Dataset.from_tensor_slices((x, np.eye(3, dtype="float32")[y])).batch(8)
    split_weights = weights_after(method, fixed, cache_dir=str(tmp_path / "split"))
    assert_same_weights(weights_after(method, one_hot, cache_dir=str(tmp_path / "plain")), split_weights)
    assert (tmp_path / "plain" / "delta_channel_weights.json").read_text() == (
        tmp_path / "split" / "delta_channel_weights.json"
    ).read_text()


def test_arrays_train_as_the_load_split_shuffled_by_the_same_seed():
    shuffled = keras_tl.data.load("digits", "train", training=True, augment="none", **DATA)
    assert_same_weights(weights_after("l2_sp", in_reading_order(), batch_size=8), weights_after("l2_sp", shuffled))


def test_plain_data_reaches_the_methods_preparations():
    """Co-Tuning's relationship from its upstream logits: the same from arrays as from the split."""
    split = keras_tl.data.load("digits", "train", training=True, augment="none", **DATA)
    method = keras_tl.methods.get("co_tuning", relationship="direct")
    relationships = [
        np.array(method.setup(tiny_source(classes=5), train).regularizers[0].relationship)
        for train in (split, in_reading_order())
    ]
    np.testing.assert_allclose(*relationships, rtol=1e-5, atol=1e-6)
    model = method.build(tiny_source(classes=5), in_reading_order())
    assert model.num_classes == 3


def test_bad_plain_data_fails_naming_the_argument():
    x, y = in_reading_order()
    with pytest.raises(ValueError, match=r"^Expected train's labels in \[0, 2\) \(num_classes=2\). Received: labels from 0 to 2$"):
        keras_tl.fine_tune("l2_sp", tiny_source(classes=5), (x, y), num_classes=2, verbose=0)
    with pytest.raises(ValueError, match=r"^Expected eval_data's labels in \[0, 3\) .* Received: labels from 1 to 3$"):
        keras_tl.fine_tune("l2_sp", tiny_source(classes=5), (x, y), eval_data=(x, y + 1), verbose=0)
