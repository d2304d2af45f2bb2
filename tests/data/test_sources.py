"""Each data-set spec on fixtures written here, and on ../shared/data where it is present."""

import os
import time

import numpy as np
import pytest

import keras_tl.data
from tests.data import fixtures


def load(spec, split, **kwargs):
    kwargs.setdefault("image_size", 8)
    kwargs.setdefault("batch_size", 4)
    return keras_tl.data.load(spec, split, **kwargs)


def labels_of(split):
    return np.concatenate([y for _, y in split.dataset.as_numpy_iterator()])


# ------------------------------------------------------------------------------------ folder


def test_folder_without_split_files_reads_every_class(tmp_path):
    fixtures.make_folder(tmp_path, {"b_cat": 3, "a_dog": 2})
    split = load(f"folder:{tmp_path}", "all", training=False)
    assert split.class_names == ["a_dog", "b_cat"]
    np.testing.assert_array_equal(split.labels, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(labels_of(split), [0, 0, 1, 1, 1])
    images, _ = next(iter(split.dataset))
    assert images.shape == (4, 8, 8, 3) and images.dtype == "float32"


def test_folder_split_files_with_images_subfolder(tmp_path):
    fixtures.make_folder(tmp_path, {"x": 3, "y": 3}, nested=True)
    fixtures.write_listing(tmp_path, "train", ["x/000.png", "y/001.png", "y/002.png"])
    fixtures.write_listing(tmp_path, "val", ["x/001.png"])
    train = load(f"folder:{tmp_path}", "train", training=False)
    assert train.class_names == ["x", "y"] and train.num_examples == 3
    val = load(f"folder:{tmp_path}", "val", training=False)  # val.txt; "validation" is an alias
    assert val.class_names == ["x", "y"] and list(val.labels) == [0]
    with pytest.raises(
        FileNotFoundError,
        match=r"Expected a split file test.txt .* Found split files: \['train.txt', 'val.txt'\]",
    ):
        load(f"folder:{tmp_path}", "test")


def test_folder_ignores_non_images_and_skips_corrupt_images(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "b" / "truncated.png").write_bytes(fixtures.image_bytes(np.random.default_rng(0))[:30])
    with pytest.warns(UserWarning) as caught:
        split = load(f"folder:{tmp_path}", "all", training=False)
    messages = [str(w.message) for w in caught]
    assert any("Ignored 1 non-image file(s)" in m and "a/notes.txt" in m for m in messages)
    assert any("Skipped 2 unreadable or corrupt image(s) of 8" in m and "b/broken.jpg" in m for m in messages)
    assert split.num_examples == 6
    np.testing.assert_array_equal(np.bincount(labels_of(split)), [3, 3])


def test_unchecked_corrupt_image_is_dropped_when_read(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 2})
    (tmp_path / "a" / "broken.jpg").write_bytes(b"junk")
    split = load(f"folder:{tmp_path}", "all", training=False, check_images=False)
    assert len(labels_of(split)) == 2


def test_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load(f"folder:{tmp_path}/nope", "all")


# ------------------------------------------------------------------------------------ tfrecord


def test_tfrecord_with_classes_tsv_and_a_corrupt_record(tmp_path):
    labels = [0, 1, 2, 1, 0, 2, 2]
    fixtures.make_tfrecord(str(tmp_path / "train-00000-of-00002.tfrecord"), labels[:4], corrupt={1})
    fixtures.make_tfrecord(str(tmp_path / "train-00001-of-00002.tfrecord"), labels[4:])
    fixtures.make_tfrecord(str(tmp_path / "validation-00000-of-00001.tfrecord"), [2, 0])
    (tmp_path / "classes.tsv").write_text("label\twnid\tname\n0\tn01\tcat\n1\tn02\tdog\n2\tn03\tfox\n")
    with pytest.warns(UserWarning, match=r"Skipped 1 unreadable or corrupt image\(s\) of 7"):
        train = load(f"tfrecord:{tmp_path}/train-*.tfrecord", "train", training=False)
    assert train.class_names == ["cat", "dog", "fox"]
    np.testing.assert_array_equal(train.labels, [0, 2, 1, 0, 2, 2])
    np.testing.assert_array_equal(labels_of(train), train.labels)
    val = load(f"tfrecord:{tmp_path}", "val", training=False)  # a directory: <split>*.tfrecord*
    np.testing.assert_array_equal(val.labels, [2, 0])


def test_tfrecord_without_classes_tsv_names_labels_by_number(tmp_path):
    fixtures.make_tfrecord(str(tmp_path / "data.tfrecord"), [0, 3, 3])
    split = load(f"tfrecord:{tmp_path}/data.tfrecord", "train", training=False)
    assert split.class_names == ["0", "1", "2", "3"]


# ------------------------------------------------------------------------------------ tfds

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is the optional [tfds] extra")


class KerasTlTinyImages(tfds.core.GeneratorBasedBuilder):
    """A 9-image data set prepared in the test's tmp_path (no download)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(6, 6, 3)),
                    "label": tfds.features.ClassLabel(names=["u", "v", "w"]),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(9), "test": self._generate_examples(3)}

    def _generate_examples(self, n):
        rng = np.random.default_rng(n)
        for i in range(n):
            yield i, {"image": rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "label": i % 3}


def test_tfds_reads_a_prepared_data_set(tmp_path):
    KerasTlTinyImages(data_dir=str(tmp_path)).download_and_prepare()
    split = load("tfds:keras_tl_tiny_images", "train", data_dir=str(tmp_path), training=False, per_class=2)
    assert split.class_names == ["u", "v", "w"]
    np.testing.assert_array_equal(np.bincount(labels_of(split)), [2, 2, 2])


def test_tfds_not_prepared_fails_fast_with_instructions(tmp_path):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        load("tfds:mnist", "train", data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert f"not prepared in data_dir='{tmp_path}' (looked for {tmp_path}/mnist/" in message
    assert "tfds.builder('mnist').download_and_prepare()" in message
    assert f"copy that folder to {tmp_path}/mnist/" in message and "~/tensorflow_datasets/mnist/" in message


@pytest.mark.parametrize("split_name", ["train", "test"])
def test_tfds_pipelines_run_under_tfds_mock_data(tmp_path, split_name):
    with tfds.testing.mock_data(num_examples=10):
        split = load("tfds:mnist", split_name, data_dir=str(tmp_path), training=split_name == "train", per_class=None)
        batches = list(split.dataset.as_numpy_iterator())
    assert split.class_names == [str(i) for i in range(10)]
    shapes = [(4, 8, 8, 3), (4, 8, 8, 3)] + ([] if split_name == "train" else [(2, 8, 8, 3)])
    assert [images.shape for images, _ in batches] == shapes  # training drops the short batch
    assert all(labels.dtype == np.int32 and np.all((0 <= labels) & (labels < 10)) for _, labels in batches)


# ------------------------------------------------------------------------------------ digits & specs


def test_digits_splits_are_disjoint_and_stratified():
    train = keras_tl.data.records_for("digits", "train")
    test = keras_tl.data.records_for("digits", "test")
    assert len(train.labels) + len(test.labels) == 1797
    per_class = np.bincount(np.concatenate([train.labels, test.labels]))
    np.testing.assert_array_equal(np.bincount(train.labels), np.round(per_class * 2 / 3))


def test_class_subset_relabels_in_the_given_order():
    split = load("digits", "test", classes=["7", 2], training=False)
    assert split.class_names == ["7", "2"]
    assert set(split.labels) == {0, 1}
    with pytest.raises(ValueError, match="Unknown class 'eleven'"):
        load("digits", "test", classes=["eleven"])


@pytest.mark.parametrize("spec", ["mnist", "folder:", "ftp:x", ""])
def test_bad_spec(spec):
    with pytest.raises(ValueError, match="Expected a data-set spec"):
        keras_tl.data.parse_spec(spec)


# ------------------------------------------------------------------------------------ ../shared/data


@pytest.mark.skipif(fixtures.shared("dtd10") is None, reason="../shared/data/dtd10 is absent")
def test_shared_dtd10_val_split():
    split = load(
        f"folder:{fixtures.shared('dtd10')}", "val", image_size=32, preprocess="resnet50", training=False
    )
    assert len(split.class_names) == 10 and split.class_names[0] == "banded"
    np.testing.assert_array_equal(np.bincount(split.labels), [40] * 10)


@pytest.mark.skipif(fixtures.shared("caltech101") is None, reason="../shared/data/caltech101 is absent")
def test_shared_caltech101_thirty_per_class():
    path = fixtures.shared("caltech101")
    with open(os.path.join(path, "train.txt")) as handle:
        lines = [line.strip() for line in handle if line.strip()]
    available = np.unique([line.split("/")[0] for line in lines], return_counts=True)[1]
    # Paths only (no decoding): the 30-per-class protocol's counts are exact.
    short = int(np.sum(available < 30))
    with pytest.warns(UserWarning, match=f"{short} class\\(es\\) have fewer than per_class=30"):
        split = load(f"folder:{path}", "train", per_class=30, seed=0, check_images=False)
    assert len(split.class_names) == 101
    np.testing.assert_array_equal(np.bincount(split.labels, minlength=101), np.minimum(available, 30))


@pytest.mark.skipif(
    fixtures.shared("tiny-imagenet-32") is None, reason="../shared/data/tiny-imagenet-32 is absent"
)
def test_shared_tiny_imagenet_validation():
    split = load(
        f"tfrecord:{fixtures.shared('tiny-imagenet-32')}",
        "validation",
        image_size=32,
        per_class=2,
        check_images=False,
        training=False,
    )
    assert len(split.class_names) == 200 and split.class_names[0].startswith("goldfish")
    np.testing.assert_array_equal(np.bincount(split.labels, minlength=200), [2] * 200)
    images, labels = next(iter(split.dataset))
    assert images.shape == (4, 32, 32, 3)


def test_an_empty_class_folder_fails_naming_it(tmp_path):
    fixtures.make_folder(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "c_empty").mkdir()
    (tmp_path / "d_notes").mkdir()
    (tmp_path / "d_notes" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError) as info:
        load(f"folder:{tmp_path}", "all")
    assert str(info.value) == (
        f"Expected every class folder of {tmp_path} to hold images. Received empty class folder(s): "
        "['c_empty', 'd_notes']. Remove them or add images: each class folder becomes an output of the model."
    )


def test_a_listed_image_that_does_not_exist_is_reported_missing(tmp_path):
    fixtures.make_folder(tmp_path, {"x": 2, "y": 2}, nested=True)
    fixtures.write_listing(tmp_path, "train", ["x/000.png", "x/gone.png", "y/001.png"])
    with pytest.warns(UserWarning) as caught:
        train = load(f"folder:{tmp_path}", "train", training=False)
    messages = [str(w.message) for w in caught]
    assert messages == [
        f"Skipped 1 missing image(s) listed in {tmp_path / 'train.txt'} (no such file under "
        f"{tmp_path / 'images'}): ['x/gone.png']"
    ]
    assert train.num_examples == 2 and list(train.labels) == [0, 1]
