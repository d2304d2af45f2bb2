"""Keras' RandAugment, MixUp and CutMix in `keras_tl.data.load`: keyed (resume-safe), and what they compute."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.data import augmentation
from tests.conftest import BACKEND, only_once, run_python
from tests.data import fixtures

# The pipeline is TensorFlow ops on both backends (`test_both_backends_draw_the_same_augmentations`
# compares their pixels). Under JAX, Keras 3.15's Equalization (one of RandAugment's ops) branches
# on the global backend and traces a 256-step histogram loop per channel: ~30 s per pipeline on
# these cores, so RandAugment's own checks run in the TensorFlow session only.
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="RandAugment traces slowly under JAX; its pixels are compared across backends"
)


@pytest.fixture
def folder(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 6, "b": 4, "c": 6})
    return f"folder:{tmp_path}"


def keyed_calls(layer, data, keys):
    """`layer` applied in one tf.data pass, once per key."""
    keyed = augmentation.KeyedLayer(layer)
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(keys, tf.int64)).map(lambda key: keyed(data, key))
    return list(dataset.as_numpy_iterator())


@pytest.mark.parametrize("name", [pytest.param("randaugment", marks=tensorflow_only), "mixup", "cutmix"])
def test_a_keyed_layer_draws_from_its_key_whatever_ran_before(name):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    if name == "randaugment":
        data, layer = images[0], keras.layers.RandAugment(value_range=(0, 255), num_ops=3, factor=0.8)
    else:
        data = {"images": images, "labels": np.eye(3, dtype="float32")[[0, 1, 2, 0]]}
        layer = augmentation.LAYERS[name]()
    first, other, again = keyed_calls(layer, data, [[1, 2], [1, 3], [1, 2]])
    fresh = keyed_calls(augmentation.LAYERS[name]() if name != "randaugment" else keras.layers.RandAugment(
        value_range=(0, 255), num_ops=3, factor=0.8), data, [[1, 2]])[0]
    flat = [np.concatenate([np.ravel(v) for v in (x.values() if isinstance(x, dict) else [x])]) for x in (first, other, again, fresh)]
    np.testing.assert_array_equal(flat[0], flat[2])  # a stateful generator would have moved on
    np.testing.assert_array_equal(flat[0], flat[3])  # nor depend on the layer's own seed
    assert not np.array_equal(flat[0], flat[1])
    source = images[0] if name == "randaugment" else images
    assert not np.allclose((first["images"] if isinstance(first, dict) else first), source)


def epoch(split, index, passes_before=0, dataset=None):
    for _ in range(passes_before):  # e.g. DELTA's channel attention reading the training split
        list(split.dataset.as_numpy_iterator())
    split.epoch.assign(index)  # what `fit` sets at the epoch's start
    batches = list((dataset or split.dataset).as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


@pytest.mark.parametrize("augment", [pytest.param("randaugment+mixup", marks=tensorflow_only), "none+cutmix"])
def test_an_epochs_augmentation_is_a_function_of_seed_and_epoch(folder, augment):
    def load():
        return keras_tl.data.load(folder, "all", image_size=6, batch_size=4, seed=3, training=True, augment=augment)

    split = load()
    for got, want in zip(epoch(split, 1, passes_before=2), epoch(load(), 1), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(epoch(split, 0)[0], epoch(split, 1)[0])
    plain = keras_tl.data.load(folder, "all", image_size=6, batch_size=4, seed=3, training=True, augment="keras")
    assert not np.array_equal(epoch(split, 0)[0], epoch(plain, 0)[0])


def test_mixup_mixes_images_and_labels_of_one_batch_with_one_weight(folder):
    split = keras_tl.data.load(folder, "all", image_size=6, batch_size=8, seed=1, training=True, augment="mixup")
    assert split.mixed and not split.unmixed().mixed and split.unmixed().unmixed_dataset is None
    assert isinstance(keras_tl.fine_tuning.classification_loss(split), keras.losses.CategoricalCrossentropy)
    assert isinstance(
        keras_tl.fine_tuning.classification_loss(split.unmixed()), keras.losses.SparseCategoricalCrossentropy
    )
    mixed_x, mixed_y = epoch(split, 0)
    x, y = epoch(split, 0, dataset=split.unmixed_dataset)
    assert mixed_y.shape == (16, 3) and mixed_y.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, rtol=1e-6)
    checked = 0
    for i in range(16):
        batch = range(8 * (i // 8), 8 * (i // 8) + 8)
        weight = mixed_y[i, y[i]]  # the example's own label's share
        partners = [j for j in batch if y[j] != y[i] and np.allclose(mixed_y[i, y[j]], 1 - weight, atol=1e-6)]
        if weight == 1 or not partners:  # mixed with itself or with its own class: the weight is not visible
            continue
        assert any(np.allclose(mixed_x[i], weight * x[i] + (1 - weight) * x[j], atol=1e-3) for j in partners)
        checked += 1
    assert checked >= 4


def test_cutmix_pastes_a_box_whose_area_is_the_label_share(folder):
    split = keras_tl.data.load(folder, "all", image_size=16, batch_size=8, seed=1, training=True, augment="cutmix")
    mixed_x, mixed_y = epoch(split, 0)
    x, y = epoch(split, 0, dataset=split.unmixed_dataset)
    checked = 0
    for i in range(16):
        pasted = ~np.isclose(mixed_x[i], x[i]).all(axis=-1)  # the pixels taken from another image
        rows, columns = np.flatnonzero(pasted.any(axis=1)), np.flatnonzero(pasted.any(axis=0))
        for j in range(8 * (i // 8), 8 * (i // 8) + 8):
            if y[j] == y[i] or not pasted.any() or not np.allclose(mixed_x[i][pasted], x[j][pasted]):
                continue
            box = np.zeros_like(pasted)
            box[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1] = True
            np.testing.assert_array_equal(pasted, box)
            # Keras' share is the real-valued box's area; the pixels are those whose corner it covers.
            np.testing.assert_allclose(mixed_y[i, y[j]], pasted.mean(), atol=(2 * 16 + 1) / 256)
            np.testing.assert_allclose(mixed_y[i, y[i]], 1 - mixed_y[i, y[j]], atol=1e-6)
            checked += 1
            break
    assert checked >= 2


def test_fine_tune_trains_on_mixed_labels_and_delta_measures_the_unmixed_ones(tmp_path):
    data = dict(image_size=8, preprocess="cifar_resnet8", batch_size=8, classes=["5", "6", "7"], per_class=8, seed=0)
    train = keras_tl.data.load("digits", "train", training=True, augment="mixup", **data)
    method = keras_tl.methods.get("delta", head_epochs=1, num_batches=1)
    model, history = keras_tl.fine_tune(
        method, keras_tl.testing.tiny_source(classes=5), train, epochs=1, verbose=0, cache_dir=str(tmp_path)
    )
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert np.isfinite(history.history["loss"]).all() and 0 <= history.history["accuracy"][0] <= 1
    assert (tmp_path / "delta_channel_weights.json").exists()


@only_once
def test_both_backends_draw_the_same_augmentations(folder):
    """Keyed Keras layers in tf.data give the same pixels under JAX (RandAugment's ops, CutMix)."""
    code = f"""
    import json
    import keras
    import numpy as np
    import keras_tl
    layers = [keras.layers.RandomRotation(0.2, seed=1), keras.layers.RandomContrast(0.5, value_range=(0, 255))]
    split = keras_tl.data.load({folder!r}, "all", image_size=6, batch_size=4, seed=3, training=True,
                               augment=["keras", *layers, "cutmix"])
    split.epoch.assign(1)
    x, y = zip(*split.dataset.as_numpy_iterator())
    print(json.dumps([np.concatenate(x).tolist(), np.concatenate(y).tolist()]))
    """
    tf_run, jax_run = (run_python(code, backend) for backend in ("tensorflow", "jax"))
    assert json.dumps(tf_run) == json.dumps(jax_run)
    assert len(tf_run[0]) == 16 and len(tf_run[1][0]) == 3


@pytest.mark.parametrize(
    "augment, message",
    [
        ("autoaugment", r"Expected augment to be one of \('keras', 'none', 'randaugment'"),
        ("randaugment+none", "Expected augment to be one of"),
        (["keras", "mixup", "cutmix"], "Expected at most one of MixUp and CutMix"),
        (["keras", keras.layers.Dense(2)], "Expected a Keras image augmentation layer"),
        (3, "Expected augment to be one of"),
    ],
)
def test_bad_augment_names_the_argument(folder, augment, message):
    with pytest.raises(ValueError, match=message):
        keras_tl.data.load(folder, "all", image_size=6, augment=augment)


def test_a_list_takes_keras_layers_with_their_own_settings(folder):
    split = keras_tl.data.load(
        folder, "all", image_size=6, batch_size=4, seed=3, training=True,
        augment=["none", keras.layers.RandomBrightness(0.5, value_range=(0, 255)), keras.layers.MixUp(alpha=1.0)],
    )
    images, labels = epoch(split, 0)
    assert split.mixed and labels.shape == (16, 3) and images.shape == (16, 6, 6, 3)
