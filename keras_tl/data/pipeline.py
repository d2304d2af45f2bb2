"""`keras_tl.data.load`: a data-set spec → a batched `tf.data` pipeline and its class names."""

import numbers

import numpy as np
import tensorflow as tf

from keras_tl.data import augmentation, checks, transforms
from keras_tl.data.classes import class_mapping
from keras_tl.data.digits import load_digits
from keras_tl.data.folder import load_folder
from keras_tl.data.records import scan
from keras_tl.data.sampling import few_shot_indices
from keras_tl.data.shuffling import shuffled_per_epoch
from keras_tl.data.split import Split
from keras_tl.data.tfds import load_tfds
from keras_tl.data.tfrecord import load_tfrecord
from keras_tl.utils import run_identity

SCHEMES = ("tfds", "folder", "tfrecord", "digits")
AUGMENTATIONS = augmentation.CHOICES


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
    max_per_class=None,
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
    (`augment="keras"`: stateless, keyed by (seed, epoch, position), so resume-safe), optionally
    followed by RandAugment and MixUp or CutMix (see `augment`); evaluation resizes the same way and takes the center crop or the ten
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
        augment: the training augmentation, keyed by (seed, epoch, position) so resume-safe:
            `"keras"` (random crop and flip), `"none"` (the center crop), or those followed by
            Keras core's layers: `"randaugment"`, `"mixup"`, `"cutmix"`, joined by `+`
            (`"randaugment+mixup"`), or a list of names and Keras layers
            (`["keras", keras.layers.RandAugment(factor=0.3), keras.layers.MixUp(alpha=0.4)]`),
            see `keras_tl.data.augmentation`. MixUp/CutMix mix batches and their labels: the
            dataset then yields float32 label mixtures `[batch, classes]` (`Split.mixed`; loss:
            `CategoricalCrossentropy`, as `keras_tl.fine_tune` picks). Or any callable
            `image -> image` on each float image in 0..255, already resized to `image_size` (it
            must keep that size), in place of the crop and as reproducible as it is.
        flip: random horizontal flips in the `"keras"` augmentation.
        resize_ratio: resize size / crop size (256 / 224 by default).
        crops: evaluation crops, `"center"` or `"ten"` (images then have a crops axis of 10).
        classes: `None` (all) or a list of classes to keep, each a class name or a label
            number (an int, or a digit string that is not a class name).
        per_class: keep this many examples per class (few-shot, fixed count).
        fraction: keep this fraction of each class (few-shot, fraction).
        complement: keep the examples the `per_class` / `fraction` sample of `seed` leaves
            out instead: a held-out set from the same split, disjoint from that sample.
        max_per_class: at most this many examples per class of what is left (a seeded sample),
            e.g. a validation set of bounded size from a large complement; None: all.
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
        A `Split` (dataset, class_names, labels, image_size, ..., selection; with MixUp/CutMix also
        the batches before mixing, `unmixed()`).

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
             check_images=check_images, shuffle_buffer=shuffle_buffer, drop_remainder=drop_remainder,
             max_per_class=max_per_class)
    )
    if crops not in transforms.CROPS:
        raise ValueError(f"Expected crops to be one of {transforms.CROPS}. Received: crops={crops!r}")
    # A callable replaces the crop, as it is; names and lists are keyed stages (`augmentation.parse`).
    crop, image_layers, mix = ("keras", [], None) if callable(augment) else augmentation.parse(augment)
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
    if max_per_class is not None:
        chosen = few_shot_indices(labels, per_class=max_per_class, seed=seed)
        indices = (np.arange(len(labels)) if indices is None else indices)[chosen]
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
        dataset, epoch = shuffled_per_epoch(dataset, max(1, min(len(labels), shuffle_buffer)), seed)

    plain = callable(augment)
    resize, augment = _stages(training, augment if plain else crop, image_size, resize_ratio, flip, crops, seed)
    # Training elements carry a per-example key (see `shuffled_per_epoch`) until batched.
    dataset = dataset.map(
        lambda encoded, label, *key: (resize(transforms.decode(encoded)), label, *key),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if not check_images:
        # Nothing was checked up front: an unreadable image is dropped (and logged) when read.
        dataset = dataset.ignore_errors(log_warning=True)
    if training:
        # Keyed stages are stateless, a function of (seed, epoch, position): parallel and reproducible
        # wherever the epoch runs. A user's callable may draw from a generator state: sequential, so
        # a seed reproduces a run.
        dataset = dataset.map(
            lambda image, label, key: (_augment_image(augment, image_layers, image, key), label, key),
            num_parallel_calls=None if plain else tf.data.AUTOTUNE,
        )
    # Fewer examples than one batch: keep the one short batch rather than an empty epoch.
    batched = dataset.batch(batch_size, drop_remainder=drop_remainder and len(labels) >= batch_size)
    to_input = transforms.tf_preprocess(preprocess)

    def finish(batches):
        batches = batches.map(lambda images, labels: (to_input(images), labels), num_parallel_calls=tf.data.AUTOTUNE)
        return batches.prefetch(tf.data.AUTOTUNE)

    unmixed = finish(batched.map(lambda images, labels, keys: (images, labels)) if training else batched)
    mixed = None
    if training and mix is not None:
        # Mixed in 0..255 before `preprocess`: the same as after it for an affine preprocessing.
        num_classes = len(class_names)
        mixed = finish(
            batched.map(lambda images, labels, keys: augmentation.apply_mix(mix, images, labels, keys, num_classes))
        )
    return Split(
        unmixed if mixed is None else mixed,
        list(class_names),
        np.asarray(mapping[labels]),
        image_size,
        epoch,
        batch_size,
        unmixed_dataset=None if mixed is None else unmixed,
        selection=selection,
    )


def _augment_image(augment, image_layers, image, key):
    if isinstance(augment, transforms.KerasAugmentation):
        image = augment(image, key)
    elif augment is not None:
        image = augment(image)
    return augmentation.apply_image_layers(image_layers, image, key)


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
