"""`keras_tl.data.as_split`: plain data (tf.data, arrays) as a `Split`, and one-line errors for bad input."""

import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.data import as_split, load, plain_split


def arrays(n=10, classes=3, size=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, 3)).astype("float32")
    return x, (np.arange(n) % classes).astype("int64")


def batches_of(split):
    return [(x.copy(), y.copy()) for x, y in split.dataset.as_numpy_iterator()]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_a_split_is_returned_as_it_is():
    split = as_split(arrays())
    assert as_split(split) is split and plain_split(split) is split and plain_split(None) is None


def test_arrays_are_shuffled_per_epoch_like_a_load_split_and_drop_the_short_batch():
    split = as_split(arrays(), batch_size=4, seed=3)
    assert (split.num_examples, split.num_classes, split.batch_size, split.steps_per_epoch) == (10, 3, 4, 2)
    assert split.class_names == ["0", "1", "2"] and split.image_size == (4, 4)
    assert keras_tl.fine_tuning.steps_per_epoch(split) == 2
    first, second = batches_of(split), batches_of(split)
    assert [len(y) for _, y in first] == [4, 4] and first[0][1].dtype == np.int32
    assert not np.array_equal(np.concatenate([y for _, y in first]), np.concatenate([y for _, y in second]))
    split.epoch.assign(0)  # what `fit` sets at an epoch's start: epoch 0 again, whatever ran before
    assert_same_batches(batches_of(split), first)
    evaluation = as_split(arrays(), batch_size=4, training=False)
    assert [len(y) for _, y in batches_of(evaluation)] == [4, 4, 2] and evaluation.epoch is None
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches_of(evaluation)]), arrays()[0])


def test_one_hot_and_unbatched_datasets_give_the_batches_of_int_labels():
    x, y = arrays()
    batched = as_split(tf.data.Dataset.from_tensor_slices((x, y)).batch(4))
    one_hot = as_split(tf.data.Dataset.from_tensor_slices((x, np.eye(3)[y])), batch_size=4)
    column = as_split((x, y[:, None]), batch_size=4, training=False)
    for split in (batched, one_hot, column):
        assert (split.num_examples, split.num_classes, split.batch_size) == (10, 3, 4)
        np.testing.assert_array_equal(split.labels, y)
        assert_same_batches(batches_of(split), batches_of(batched))
    # A plain dataset keeps its short last batch: the schedule counts the 3 batches it yields.
    assert batched.steps_per_epoch == 3 and batched.batches == 3 and batched.epoch is None
    np.testing.assert_array_equal(as_split((x, np.eye(3)[y]), training=False).labels, y)


def test_unknown_cardinality_is_counted_and_num_classes_can_be_given():
    x, y = arrays(n=12)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda image, label: label < 2).batch(5)
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    split = as_split(dataset, num_classes=4, class_names=["a", "b", "c", "d"])
    assert (split.num_examples, split.batch_size, split.steps_per_epoch, split.num_classes) == (8, 5, 2, 4)


def test_a_load_split_and_its_arrays_give_the_same_batches_every_epoch(tmp_path):
    data = dict(image_size=4, batch_size=4, classes=["5", "6", "7"], per_class=5, flip=False, seed=2)
    split = load("digits", "train", training=True, augment="none", **data)
    evaluation = load("digits", "train", training=False, **data)
    x = np.concatenate([images for images, _ in evaluation.dataset.as_numpy_iterator()])
    plain = as_split((x, evaluation.labels), batch_size=4, seed=2)
    for _ in range(3):  # three epochs, each reshuffled by (seed, epoch) on both sides
        assert_same_batches(batches_of(plain), batches_of(split))


@pytest.mark.parametrize(
    "data, kwargs, message",
    [
        (arrays()[0][0], {}, r"^Expected train to be a keras_tl.data.Split, .* Received: train of type ndarray$"),
        ((arrays()[0][0], arrays()[1]), {}, r"^Expected train's images x of rank 4 .*Received: x.shape=\(4, 4, 3\)$"),
        ((arrays()[0], arrays()[1][:9]), {}, r"^Expected train's x and y .* Received: x.shape=\(10, 4, 4, 3\), y.shape=\(9,\)$"),
        (arrays(), {"num_classes": 2}, r"^Expected train's labels in \[0, 2\) \(num_classes=2\). Received: labels from 0 to 2$"),
        ((arrays()[0], -arrays()[1]), {}, r"^Expected train's labels in \[0, 1\) .* Received: labels from -2 to 0$"),
        ((arrays()[0], np.full((10, 3), 1 / 3)), {}, r"^Expected train's labels y to be int class ids or one-hot rows"),
        ((arrays()[0], arrays()[1] + 0.5), {}, r"^Expected train's labels y to be int class ids .* dtype float64$"),
        (arrays(), {"batch_size": 0}, r"^Expected batch_size to be a positive int. Received: batch_size=0$"),
        (arrays(), {"num_classes": 2.5}, r"^Expected num_classes to be a positive int. Received: num_classes=2.5$"),
        (
            tf.data.Dataset.from_tensor_slices(arrays()[0]),
            {},
            r"^Expected train to yield \(images, labels\) pairs. Received: element_spec=",
        ),
        (
            tf.data.Dataset.from_tensor_slices(arrays()).repeat(),
            {},
            r"^Expected train to be a finite dataset .* Received: train with infinite cardinality$",
        ),
        (
            tf.data.Dataset.from_tensor_slices((arrays()[0][:, 0], arrays()[1])),
            {},
            r"^Expected train's images to be batches .* Received: images of shape \(4, 3\)$",
        ),
        (
            tf.data.Dataset.from_tensor_slices((arrays()[0], arrays()[1][:, None, None])),
            {},
            r"^Expected train's labels to be int class ids or one-hot rows per example. Received: labels of shape",
        ),
        (tf.data.Dataset.from_tensor_slices(arrays()).take(0), {}, r"^Expected train to hold at least one example"),
        (arrays(), {"class_names": ["a"]}, r"^Expected one class name per class \(3\). Received: class_names of length 1$"),
    ],
)
def test_bad_input_is_one_line_naming_the_argument(data, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        as_split(data, name="train", **kwargs)
    assert "\n" not in str(error.value)
