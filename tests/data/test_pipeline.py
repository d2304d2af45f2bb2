"""`keras_tl.data.load` end to end: what it yields, few-shot through it, fit, 10-crop evaluation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl.data
from keras_tl.data import transforms
from tests.data import fixtures


@pytest.fixture
def folder(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 6, "b": 4, "c": 5})
    return f"folder:{tmp_path}"


def tiny_classifier(classes=3, size=4, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def test_few_shot_through_load_is_exact_and_seeded(folder):
    first = keras_tl.data.load(folder, "all", image_size=4, per_class=3, seed=5, training=False)
    np.testing.assert_array_equal(np.bincount(first.labels), [3, 3, 3])
    again = keras_tl.data.load(folder, "all", image_size=4, per_class=3, seed=5, training=False)
    other = keras_tl.data.load(folder, "all", image_size=4, per_class=3, seed=6, training=False)
    batches = [np.concatenate([x for x, _ in s.dataset.as_numpy_iterator()]) for s in (first, again, other)]
    np.testing.assert_array_equal(batches[0], batches[1])
    assert not np.array_equal(batches[0], batches[2])
    fraction = keras_tl.data.load(folder, "all", image_size=4, fraction=0.5, training=False)
    np.testing.assert_array_equal(np.bincount(fraction.labels), [3, 2, 2])  # round(3), round(2), round(2.5)=2


def test_complement_is_the_rest_of_the_split_and_disjoint_from_the_sample(folder):
    def images(split):
        return {x.tobytes() for x in np.concatenate([x for x, _ in split.dataset.as_numpy_iterator()])}

    kwargs = {"image_size": 4, "per_class": 3, "seed": 5, "training": False}
    sample = keras_tl.data.load(folder, "all", **kwargs)
    rest = keras_tl.data.load(folder, "all", complement=True, **kwargs)
    np.testing.assert_array_equal(np.bincount(rest.labels), [3, 1, 2])  # 6-3, 4-3, 5-3
    everything = keras_tl.data.load(folder, "all", image_size=4, training=False)
    assert not images(sample) & images(rest)
    assert images(sample) | images(rest) == images(everything)


def test_eval_images_are_the_preprocessed_center_crop(folder):
    split = keras_tl.data.load(
        folder, "all", image_size=4, preprocess="cifar_resnet20", training=False, batch_size=15
    )
    images, _ = next(iter(split.dataset))
    raw = split_raw_images(folder)
    expected = [
        transforms.center_crop(transforms.resize_to_aspect(tf.constant(r), (5, 5)), (4, 4)).numpy() / 127.5
        - 1.0
        for r in raw
    ]
    np.testing.assert_allclose(images.numpy(), np.stack(expected), atol=1e-5)


def split_raw_images(folder):
    records = keras_tl.data.records_for(folder, "all")
    return [transforms.decode(encoded).numpy() for _, encoded, _ in records.indexed()]


def test_training_batches_shuffle_augment_and_drop_the_remainder_by_default(folder):
    split = keras_tl.data.load(folder, "all", image_size=4, batch_size=4, seed=0, training=True)
    epochs = [[y for _, y in split.dataset.as_numpy_iterator()] for _ in range(2)]
    assert [len(b) for b in epochs[0]] == [4, 4, 4]
    # The cosine schedule's length counts these batches: no step runs past it.
    assert len(epochs[0]) == keras_tl.fine_tuning.steps_per_epoch(split)
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))  # reshuffled
    kept = keras_tl.data.load(
        folder, "all", image_size=4, batch_size=4, seed=0, training=True, drop_remainder=False
    )
    evaluation = keras_tl.data.load(folder, "all", image_size=4, batch_size=4, training=False)
    for whole in (kept, evaluation):
        sizes = [len(y) for _, y in whole.dataset.as_numpy_iterator()]
        assert sizes[:3] == [4, 4, 4] and sum(sizes) == whole.num_examples > 12


def test_an_epochs_crops_do_not_depend_on_what_read_the_data_before(folder):
    """Resume-safe and preparation-safe: epoch k is a function of (seed, k), like its order."""

    def epoch_images(epoch, passes_before):
        split = keras_tl.data.load(folder, "all", image_size=4, batch_size=4, seed=3, training=True)
        for _ in range(passes_before):  # e.g. DELTA's channel attention reading the training split
            list(split.dataset.as_numpy_iterator())
        split.epoch.assign(epoch)  # what `fit` sets at the epoch's start (`epoch_callback`)
        return np.concatenate([x for x, _ in split.dataset.as_numpy_iterator()])

    first = epoch_images(0, passes_before=0)
    np.testing.assert_array_equal(first, epoch_images(0, passes_before=2))
    np.testing.assert_array_equal(epoch_images(1, passes_before=0), epoch_images(1, passes_before=3))
    assert not np.array_equal(np.sort(first, axis=0), np.sort(epoch_images(1, passes_before=0), axis=0))


def test_load_feeds_fit_on_this_backend(folder):
    split = keras_tl.data.load(
        folder, "all", image_size=4, preprocess="cifar_resnet20", batch_size=5, training=True
    )
    model = tiny_classifier()
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(split.dataset, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def test_ten_crop_logits_are_the_mean_over_the_ten_crops(folder):
    model = tiny_classifier()
    split = keras_tl.data.load(folder, "all", image_size=4, crops="ten", training=False, batch_size=4)
    logits, labels = keras_tl.data.predict_logits(model, split.dataset)
    expected = []
    for image in split_raw_images(folder):
        resized = transforms.resize_to_aspect(tf.constant(image), (5, 5)).numpy()
        crops = [resized[t : t + 4, s : s + 4] for t, s in [(0, 0), (0, 1), (1, 0), (1, 1), (0, 0)]]
        crops[4] = resized[0:4, 0:4]  # (5 - 4) // 2 = 0: the center crop of a 5x5 image starts at 0
        crops += [c[:, ::-1] for c in crops]
        expected.append(np.mean(keras.ops.convert_to_numpy(model(np.stack(crops))), axis=0))
    np.testing.assert_allclose(logits, np.stack(expected), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(labels, split.labels)


def test_predict_logits_pads_a_short_last_batch_to_the_first_ones_shape():
    model = tiny_classifier()
    x = np.random.default_rng(0).uniform(-1, 1, (12, 4, 4, 3)).astype("float32")
    y = np.arange(12) % 3
    shapes = []
    predict_on_batch = model.predict_on_batch

    def recorded(images):
        shapes.append(images.shape)
        return predict_on_batch(images)

    model.predict_on_batch = recorded
    logits, labels = keras_tl.data.predict_logits(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(5))
    assert shapes == [(5, 4, 4, 3)] * 3  # 5, 5 and 2 padded to 5: one trace
    np.testing.assert_allclose(logits, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, y)


def test_accuracies_top1_and_mean_per_class():
    logits = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    labels = np.array([0, 1, 1, 2, 2, 0])
    # top-1: 4/6; per class: class 0 1/2, class 1 1/2, class 2 2/2 -> 2/3
    result = keras_tl.data.accuracies(logits, labels)
    np.testing.assert_allclose([result["top1"], result["mean_per_class"]], [4 / 6, 2 / 3])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"crops": "five"}, "Expected crops to be one of"),
        ({"augment": "autoaugment"}, "Expected augment to be one of"),
        ({"augment": "mixup+randaugment"}, r"Expected MixUp/CutMix last"),
        ({"augment": "mixup+cutmix"}, "Expected at most one of MixUp and CutMix"),
        ({"batch_size": 0}, "Expected batch_size to be a positive int"),
        ({"image_size": (4, 4, 3)}, "Expected image_size"),
        ({"complement": True}, "Expected per_class or fraction with complement=True"),
    ],
)
def test_invalid_arguments(folder, kwargs, message):
    kwargs.setdefault("image_size", 4)
    with pytest.raises(ValueError, match=message):
        keras_tl.data.load(folder, "all", **kwargs)


def test_training_pipeline_is_reproducible_for_a_seed(folder):
    def first_epoch(seed):
        split = keras_tl.data.load(folder, "all", image_size=4, batch_size=4, seed=seed, training=True)
        return np.concatenate([x for x, _ in split.dataset.as_numpy_iterator()])

    np.testing.assert_array_equal(first_epoch(3), first_epoch(3))
    assert not np.array_equal(first_epoch(3), first_epoch(4))
