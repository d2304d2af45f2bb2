"""What `keras_tl.data.load` says about a split's own problems: entries listed twice, classes left
without examples, labels past the class list, an empty split file, a non-integer image size."""

import os

import numpy as np
import pytest

import keras_tl.data
from tests.data import fixtures


def load(spec, split, **kwargs):
    kwargs.setdefault("image_size", 8)
    kwargs.setdefault("batch_size", 4)
    return keras_tl.data.load(spec, split, training=False, **kwargs)


def folder_with_listing(root, entries, counts=None):
    fixtures.make_folder(root, counts or {"a": 4, "b": 4}, nested=True)
    fixtures.write_listing(root, "train", entries)


# ------------------------------------------------------------------------------------ item 5


def test_an_entry_listed_twice_is_read_once_with_a_warning_naming_it(tmp_path):
    folder_with_listing(tmp_path, ["a/000.png", "a/001.png", "b/000.png", "a/001.png", "b/000.png", "b/001.png"])
    with pytest.warns(UserWarning) as caught:
        split = load(f"folder:{tmp_path}", "train")
    assert [str(w.message) for w in caught] == [
        f"2 entries are listed more than once in folder:{tmp_path} (split=train) and read once: "
        "['a/001.png', 'b/000.png']"
    ]
    assert split.num_examples == 4
    np.testing.assert_array_equal(split.labels, [0, 0, 1, 1])
    assert sum(len(y) for _, y in split.dataset.as_numpy_iterator()) == 4


def test_strict_makes_a_duplicate_an_error(tmp_path):
    folder_with_listing(tmp_path, ["a/000.png", "a/000.png", "b/000.png"])
    with pytest.raises(ValueError) as info:
        load(f"folder:{tmp_path}", "train", strict=True)
    assert str(info.value) == (
        f"1 entry is listed more than once in folder:{tmp_path} (split=train) and read once: ['a/000.png'] "
        "(strict=True: an error)."
    )


def test_a_class_whose_every_image_is_corrupt_warns_naming_it(tmp_path):
    images = fixtures.make_folder(tmp_path, {"a": 2, "b": 2, "c": 2})
    for name in os.listdir(os.path.join(images, "b")):
        with open(os.path.join(images, "b", name), "wb") as handle:
            handle.write(b"not an image")
    with pytest.warns(UserWarning) as caught:
        split = load(f"folder:{tmp_path}", "all")
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith("Skipped 2 unreadable or corrupt image(s) of 6")
    assert messages[1] == (
        f"1 class(es) have no example in folder:{tmp_path} (split=all): ['b']. They stay classes of the model "
        "(an output each), but nothing in this split teaches or measures them."
    )
    assert split.class_names == ["a", "b", "c"] and np.bincount(split.labels).tolist() == [2, 0, 2]
    with pytest.raises(ValueError, match=r"1 class\(es\) have no example .*\['b'\].*\(strict=True: an error\)\.$"):
        load(f"folder:{tmp_path}", "all", strict=True)


def test_a_class_every_listed_image_of_which_is_missing_warns_too(tmp_path):
    folder_with_listing(tmp_path, ["a/000.png", "b/gone.png"])
    with pytest.warns(UserWarning) as caught:
        load(f"folder:{tmp_path}", "train")
    assert any("have no example" in str(w.message) and "['b']" in str(w.message) for w in caught)


# ------------------------------------------------------------------------------------ item 6


def test_an_empty_split_file_is_one_line_naming_it(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 2}, nested=True)
    (tmp_path / "train.txt").write_text("")
    with pytest.raises(ValueError) as info:
        load(f"folder:{tmp_path}", "train")
    assert str(info.value) == (
        f"Expected {tmp_path / 'train.txt'} to list images of {tmp_path / 'images'} for split='train'. "
        "Received: no existing image in it (an empty file, or only missing or non-image entries)."
    )


def test_a_tfrecord_label_past_classes_tsv_names_it_and_the_file(tmp_path):
    fixtures.make_tfrecord(str(tmp_path / "train.tfrecord"), [0, 1, 3, 3])
    (tmp_path / "classes.tsv").write_text("label\twnid\tname\n0\tn01\tcat\n1\tn02\tdog\n")
    with pytest.raises(ValueError) as info:
        load(f"tfrecord:{tmp_path}/train.tfrecord", "train")
    assert str(info.value) == (
        f"Expected the labels of tfrecord:{tmp_path}/train.tfrecord (1 file(s), classes from "
        f"{tmp_path / 'classes.tsv'}) to be in 0..1 (its 2 class names). Received: label(s) [3] in 2 example(s)."
    )


@pytest.mark.parametrize("image_size", [16.5, "16", (8, 8.0), (8,), True, 0, (8, -1)])
def test_image_size_must_be_ints(image_size):
    with pytest.raises(ValueError) as info:
        load("digits", "test", image_size=image_size)
    assert str(info.value) == (
        "Expected image_size to be a positive int or (height, width) of ints. "
        f"Received: image_size={image_size!r}"
    )


def test_numpy_ints_are_image_sizes():
    assert load("digits", "test", image_size=(np.int64(6), 8)).image_size == (6, 8)


# ------------------------------------------------------------------------------------ identity


def test_a_split_records_what_selected_it():
    split = keras_tl.data.load(
        "digits", "train", image_size=8, preprocess="cifar_resnet8", classes=["6", 5], per_class=3, seed=2,
        training=True, augment="none",
    )
    assert split.selection == {
        "spec": "digits", "split": "train", "image_size": [8, 8], "preprocess": "cifar_resnet8", "batch_size": 32,
        "training": True, "augment": "none", "flip": True, "resize_ratio": 256 / 224, "crops": "center",
        "classes": ["6", 5], "per_class": 3, "fraction": None, "complement": False, "seed": 2,
        "check_images": True, "shuffle_buffer": 10_000, "drop_remainder": True, "max_per_class": None,
    }
