"""`keras_tl.data.load`: a data-set spec → a batched `tf.data` pipeline and its class names."""

import dataclasses
import numbers

import numpy as np
import tensorflow as tf

from keras_tl import run_identity
from keras_tl.data import checks, transforms
from keras_tl.data.classes import class_mapping
from keras_tl.data.digits import load_digits
from keras_tl.data.folder import load_folder
from keras_tl.data.records import scan
from keras_tl.data.sampling import few_shot_indices
from keras_tl.data.tfds import load_tfds
from keras_tl.data.tfrecord import load_tfrecord

SCHEMES = ("tfds", "folder", "tfrecord", "digits")
AUGMENTATIONS = ("keras", "none")


@dataclasses.dataclass
class Split:
    """What `load` returns.

    Attributes:
        dataset: `tf.data.Dataset` of `(images, labels)` batches: float32 images
            `[batch, H, W, 3]` (`[batch, 10, H, W, 3]` with `crops="ten"`) already preprocessed
            for the backbone, int32 labels. It feeds `fit`/`evaluate` on every backend.
        class_names: the name of each label of the returned labels.
        labels: int array, the label of every example the dataset yields (in reading order,
            before any shuffling), e.g. for per-class counts.
        image_size: `(H, W)`.
        batch_size: examples per batch (the last batch may be smaller).
        epoch: with `training=True`, the `tf.Variable` epoch index the next pass shuffles
            with (each pass reads it, then adds 1); `None` otherwise. A resumed `fit` sets it
            at each epoch's start (`epoch_callback`), so the order does not depend on how many
            epochs ran in this process.
        selection: the `load` arguments that selected and transformed the examples (spec,
            split, classes, per_class, seed, image_size, preprocess, augment, training, ...),
            JSON-safe; a run's identity (`keras_tl.run_identity`) records them. None for a
            split made by hand.
    """

    dataset: tf.data.Dataset
    class_names: list
    labels: np.ndarray
    image_size: tuple
    epoch: tf.Variable = None
    batch_size: int | None = None
    selection: dict | None = None

    def epoch_callback(self):
        """A Keras callback that sets `epoch` to `fit`'s epoch index (resume-safe shuffling)."""
        import keras

        epoch = self.epoch
        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda index, logs=None: epoch is not None and epoch.assign(index)
        )

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def num_examples(self):
        return len(self.labels)

    def describe(self):
        """`"150 training images in 5 classes, 30 per class (5: 30, 6: 30, ...)"`: what a run trains on."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        spread = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
        shown = ", ".join(f"{name}: {count}" for name, count in zip(self.class_names[:20], counts[:20], strict=True))
        more = ", ..." if self.num_classes > 20 else ""
        return (
            f"{self.num_examples} training images in {self.num_classes} classes, {spread} per class "
            f"({shown}{more})"
        )


def parse_spec(spec):
    """`"scheme:argument"` → `(scheme, argument)`; `"digits"` alone is allowed."""
    scheme, _, argument = str(spec).partition(":")
    if scheme not in SCHEMES or (scheme != "digits" and not argument):
        raise ValueError(
            "Expected a data-set spec 'tfds:<name>', 'folder:<path>', 'tfrecord:<glob or dir>' or "
            f"'digits'. Received: spec={spec!r}"
        )
    return scheme, argument


def records_for(spec, split="train", data_dir=None):
    """The `Records` of a spec's split (no reading of images yet)."""
    scheme, argument = parse_spec(spec)
    if scheme == "folder":
        return load_folder(argument, split)
    if scheme == "tfrecord":
        return load_tfrecord(argument, split)
    if scheme == "tfds":
        return load_tfds(argument, split, data_dir)
    return load_digits(split)


def load(
    spec,
    split="train",
    *,
    image_size,
    preprocess=None,
    batch_size=32,
    training=None,
    augment="keras",
    flip=True,
    resize_ratio=transforms.DEFAULT_RESIZE_RATIO,
    crops="center",
    classes=None,
    per_class=None,
    fraction=None,
    complement=False,
    seed=0,
    data_dir=None,
    check_images=True,
    cache=True,
    shuffle_buffer=10_000,
    drop_remainder=None,
    strict=False,
):
    """Loads a split of an image classification data set as a batched `tf.data` pipeline.

    Reading: the spec names the source (`tfds:<name>` from `data_dir`, `folder:<path>`,
    `tfrecord:<glob or dir>`, or `digits`, scikit-learn's digits). With `check_images`, a
    first pass decodes every image and skips the unreadable ones (one warning counts them).
    Selecting: `classes` keeps some classes (relabelled in the given order), then
    `per_class` / `fraction` draw a stratified few-shot sample with `seed`. Transforming:
    training resizes to `resize_ratio × image_size`, crops `image_size` at random and flips
    (`augment="keras"`: stateless, keyed by (seed, epoch, position), so resume-safe; any callable `image -> image` instead, e.g. a
    keras-cv layer); evaluation resizes the same way and takes the center crop or the ten
    crops. Last, `preprocess` maps 0..255 RGB to the backbone's input.

    Args:
        spec: the data-set spec (see above).
        split: `"train"`, `"test"`, `"val"` ... as the source names them; `"all"` for a folder
            without split files.
        image_size: `(H, W)` or an int, the network's input size.
        preprocess: a backbone name (its `keras_tl.backbones.preprocess_input`), a callable on
            batches of 0..255 images, or `None` to keep 0..255.
        batch_size: examples per batch.
        training: shuffle and augment; defaults to `split == "train"`.
        augment: `"keras"`, `"none"` or a callable applied to each float image in 0..255,
            already resized to `image_size` (it must keep that size), e.g. keras-cv's
            `RandAugment(value_range=(0, 255))`.
        flip: random horizontal flips in the `"keras"` augmentation.
        resize_ratio: resize size / crop size (256 / 224 by default).
        crops: evaluation crops, `"center"` or `"ten"` (images then have a crops axis of 10).
        classes: `None` (all) or a list of classes to keep, each a class name or a label
            number (an int, or a digit string that is not a class name).
        per_class: keep this many examples per class (few-shot, fixed count).
        fraction: keep this fraction of each class (few-shot, fraction).
        complement: keep the examples the `per_class` / `fraction` sample of `seed` leaves
            out instead: a held-out set from the same split, disjoint from that sample.
        seed: seed of the few-shot sample and of shuffling/augmentation.
        data_dir: where tfds data sets are prepared.
        check_images: decode every image once up front and skip the unreadable ones (one
            warning counts them); else unreadable images are dropped as they are read.
        cache: keep the encoded images in memory after the first epoch.
        shuffle_buffer: shuffle buffer size (capped at the number of examples).
        drop_remainder: drop the last incomplete batch; defaults to `training`. Training drops
            it because `keras_tl.fine_tune`'s cosine schedule counts full batches
            (`fine_tuning.steps_per_epoch`): a short batch would run past the schedule's end,
            and under JAX it would also compile the step a second time.
        strict: fail instead of warning when an entry is listed twice (read once otherwise) or
            a class is left without examples (see `keras_tl.data.checks`).

    Returns:
        A `Split` (dataset, class_names, labels, image_size, ..., selection).

    Example:
    >>> train = keras_tl.data.load("folder:../shared/data/dtd10", "train", image_size=224,
    ...                            preprocess="resnet50", per_class=30, seed=0)
    >>> model.fit(train.dataset, epochs=10)
    """
    image_size = _pair(image_size)
    training = (split == "train") if training is None else bool(training)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    selection = run_identity.json_safe(
        dict(spec=spec, split=split, image_size=image_size, preprocess=preprocess, batch_size=batch_size,
             training=training, augment=augment, flip=flip, resize_ratio=resize_ratio, crops=crops,
             classes=classes, per_class=per_class, fraction=fraction, complement=complement, seed=seed,
             check_images=check_images, shuffle_buffer=shuffle_buffer, drop_remainder=drop_remainder)
    )
    if crops not in transforms.CROPS:
        raise ValueError(f"Expected crops to be one of {transforms.CROPS}. Received: crops={crops!r}")
    if not (callable(augment) or augment in AUGMENTATIONS):
        raise ValueError(
            f"Expected augment to be one of {AUGMENTATIONS} or a callable. Received: augment={augment!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Expected batch_size to be a positive int. Received: batch_size={batch_size!r}")

    if complement and per_class is None and fraction is None:
        raise ValueError(
            "Expected per_class or fraction with complement=True (the held-out set is what that "
            f"sample leaves out). Received: complement={complement!r}"
        )
    records = records_for(spec, split, data_dir)
    if check_images or records.labels is None:
        indices, labels = scan(records, check_images=check_images)
    else:
        indices, labels = np.arange(len(records.labels)), np.asarray(records.labels)
    class_names = records.class_names or [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    checks.check_labels(records, labels, class_names)
    indices, labels = checks.drop_duplicates(records, indices, labels, strict)
    mapping = np.arange(len(class_names), dtype=np.int64)
    if classes is not None:
        mapping, class_names = class_mapping(classes, class_names)
        keep = mapping[labels] >= 0
        indices = indices[keep]
        labels = labels[keep]
    checks.check_empty_classes(records, mapping[labels], class_names, strict)
    if per_class is not None or fraction is not None:
        chosen = few_shot_indices(labels, per_class=per_class, fraction=fraction, seed=seed)
        if complement:
            chosen = np.setdiff1d(np.arange(len(labels)), chosen)
        indices = indices[chosen]
        labels = labels[chosen]
    if len(labels) == 0:
        raise ValueError(f"No examples left in {records.description} after selection (classes={classes!r}).")

    dataset = records.subset(indices)
    if check_images:
        # Every kept image decodes: the size is known, so `fit` knows its steps per epoch.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(labels)))
    mapping_t = tf.constant(mapping)
    dataset = dataset.map(
        lambda index, encoded, label: (encoded, tf.cast(tf.gather(mapping_t, label), tf.int32))
    )
    if cache:
        dataset = dataset.cache()
    epoch = None
    if training:
        dataset, epoch = _shuffled_per_epoch(dataset, max(1, min(len(labels), shuffle_buffer)), seed)

    resize, augment = _stages(training, augment, image_size, resize_ratio, flip, crops, seed)
    # Training elements carry a per-example key (see `_shuffled_per_epoch`) until augmented.
    dataset = dataset.map(
        lambda encoded, label, *key: (resize(transforms.decode(encoded)), label, *key),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if not check_images:
        # Nothing was checked up front: an unreadable image is dropped (and logged) when read.
        dataset = dataset.ignore_errors(log_warning=True)
    if isinstance(augment, transforms.KerasAugmentation):
        # Stateless, keyed per example: parallel and reproducible wherever the epoch runs.
        dataset = dataset.map(
            lambda image, label, key: (augment(image, key), label), num_parallel_calls=tf.data.AUTOTUNE
        )
    elif augment is not None:
        # A user's callable may draw from a generator state: sequential, so a seed reproduces a run.
        dataset = dataset.map(lambda image, label, key: (augment(image), label))
    elif training:
        dataset = dataset.map(lambda image, label, key: (image, label))
    # Fewer examples than one batch: keep the one short batch rather than an empty epoch.
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder and len(labels) >= batch_size)
    to_input = transforms.tf_preprocess(preprocess)
    dataset = dataset.map(
        lambda images, labels: (to_input(images), labels), num_parallel_calls=tf.data.AUTOTUNE
    )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    labels = np.asarray(mapping[labels])
    return Split(dataset, list(class_names), labels, image_size, epoch, batch_size, selection)


def _shuffled_per_epoch(dataset, buffer_size, seed):
    """`dataset` shuffled by a seed of `(seed, epoch)`, not by how often it was iterated; each
    element gains a last component, its augmentation key `(seed, epoch, position)`.

    `shuffle(reshuffle_each_iteration=True)` draws each pass's order from this process's
    iterator count, so a run resumed at epoch k would replay epoch 0's order; here pass k
    has the order of `(seed, k)` wherever it runs. Blocks of `buffer_size` consecutive
    examples are each permuted uniformly (stateless); with `buffer_size` ≥ the number of
    examples (the default up to 10,000) that is one uniform permutation per epoch.
    """
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    cardinality = dataset.cardinality()

    def one_pass(_):
        index = epoch.assign_add(1) - 1

        def permute(block_index, block):
            block_seed = tf.stack([tf.constant(seed, tf.int64), index * 1_000_003 + block_index])
            order = tf.random.experimental.stateless_shuffle(
                tf.range(tf.shape(block[-1])[0]), seed=block_seed
            )
            return tf.data.Dataset.from_tensor_slices(
                tf.nest.map_structure(lambda t: tf.gather(t, order), block)
            )

        # The augmentation's key of each example: (seed, epoch, position), another stream than the order's.
        base = tf.constant(seed, tf.int64) * 2 + 1
        return (
            dataset.batch(buffer_size)
            .enumerate()
            .flat_map(permute)
            .enumerate()
            .map(lambda position, element: (*element, tf.stack([base, index * 1_000_000_007 + position])))
        )

    shuffled = tf.data.Dataset.from_tensors(0).flat_map(one_pass)
    if cardinality >= 0:
        shuffled = shuffled.apply(tf.data.experimental.assert_cardinality(cardinality))
    return shuffled, epoch


def _pair(image_size):
    pair = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    if not (
        isinstance(pair, (tuple, list))
        and len(pair) == 2
        and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in pair)
    ):
        raise ValueError(
            f"Expected image_size to be a positive int or (height, width) of ints. Received: image_size={image_size!r}"
        )
    return tuple(int(d) for d in pair)



def _stages(training, augment, image_size, ratio, flip, crops, seed):
    """`(resize, augment)`: a deterministic per-image resize (run in parallel) and the random part (or None)."""
    if not training:
        return (lambda image: transforms.eval_transform(image, image_size, ratio, crops)), None
    if augment == "none":
        return (lambda image: transforms.eval_transform(image, image_size, ratio, "center")), None
    if callable(augment):
        return (lambda image: transforms.resize_to_aspect(image, image_size)), augment
    size = transforms.resize_size(image_size, ratio)
    return (lambda image: transforms.resize_to_aspect(image, size)), transforms.KerasAugmentation(
        image_size, flip=flip, seed=seed
    )
