"""`tfds:<name>`: a prepared TensorFlow Datasets data set, read from `data_dir` without downloading.

`tfds.load` on an offline machine retries its downloads for minutes; here the prepared files
are looked for first, and their absence fails at once with how to get them.
"""

import os

import tensorflow as tf

from keras_tl.data.records import Records

INSTALL = "pip install 'keras_tl[tfds]'  (tensorflow-datasets and importlib_resources)"


def import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"The tfds: data sets need tensorflow-datasets. Install it with: {INSTALL}"
        ) from error
    return tfds


def default_data_dir():
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def load_tfds(name, split="train", data_dir=None):
    tfds = import_tfds()
    data_dir = data_dir or default_data_dir()
    try:
        builder = tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except Exception as error:  # noqa: BLE001 - tfds raises several types for unknown names
        raise ValueError(
            f"Unknown TensorFlow Datasets name. Received: tfds:{name} ({type(error).__name__}: "
            f"{str(error).splitlines()[0]})"
        ) from error
    if not builder.is_prepared() and not _readable(builder, split):
        raise FileNotFoundError(_not_prepared_message(name, data_dir, builder))
    info = builder.info
    image_key, label_key = _keys(info, name)
    class_names = list(getattr(info.features[label_key], "names", None) or [])
    # `info.splits` is empty where the data come from elsewhere (`tfds.testing.mock_data`).
    if info.splits and split.split("[", 1)[0] not in info.splits:
        raise ValueError(
            f"Expected split to be one of {sorted(info.splits)} for tfds:{name}. Received: split={split!r}"
        )

    def parse(index, example):
        return index, example[image_key], tf.cast(example[label_key], tf.int64)

    def indexed():
        dataset = builder.as_dataset(
            split=split,
            shuffle_files=False,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(interleave_cycle_length=1),
        )
        return dataset.enumerate().map(parse, num_parallel_calls=tf.data.AUTOTUNE)

    return Records(
        class_names=class_names or None,
        indexed=indexed,
        description=f"tfds:{name} (split={split}, data_dir={data_dir})",
        count=lambda: info.splits[split].num_examples if info.splits else _count(indexed()),
    )


def _readable(builder, split):
    """Whether `as_dataset` serves `split` although nothing is prepared (a mock, e.g. in tests).

    Reading prepared files never downloads, so this answers at once offline, unlike `tfds.load`.
    """
    try:
        builder.as_dataset(split=split)
    except AssertionError:  # tfds: "Dataset <name>: could not find data in <data_dir>"
        return False
    return True


def _count(dataset):
    return int(dataset.reduce(0, lambda count, _: count + 1))


def _not_prepared_message(name, data_dir, builder):
    relative = os.path.relpath(builder.data_dir, data_dir)
    return (
        f"The TensorFlow Datasets data set {name!r} is not prepared in data_dir={data_dir!r} "
        f"(looked for {builder.data_dir}), and keras_tl never downloads. To prepare it:\n"
        f"  1. on a machine with internet, run\n"
        f'       python -c "import tensorflow_datasets as tfds; tfds.builder({name!r}).download_and_prepare()"\n'
        f"     which writes ~/tensorflow_datasets/{relative};\n"
        f"  2. copy that folder to {builder.data_dir} on this machine, or pass the folder that "
        f"holds {name}/ as data_dir= (apps: --data_dir; or set TFDS_DATA_DIR).\n"
        f"Data sets that need a manual download say so on their catalog page: "
        f"https://www.tensorflow.org/datasets/catalog/{name}"
    )


def _keys(info, name):
    keys = info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        return keys
    if "image" in info.features and "label" in info.features:
        return "image", "label"
    raise ValueError(
        f"Expected tfds:{name} to have supervised keys (image, label). Received features: {list(info.features)}"
    )
