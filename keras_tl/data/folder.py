"""`folder:<path>`: an image folder `<class>/<file>`, with optional split files.

Layouts (both as in `../shared/data/caltech101` and `dtd10`):

    <path>/<class>/<file>                    every image, or
    <path>/images/<class>/<file>             with <path>/train.txt, test.txt, val.txt

A split file lists one image per line, relative to the folder holding the class folders;
a listed image that does not exist is skipped with a warning that says it is missing.
Classes are the sorted class-folder names, the same for every split, so labels agree
across splits even when a split misses a class. A class folder without any image fails
the load, naming it: it would become a class that no example teaches (an output the head
can predict, listed in the model card), and such a folder is far more often a mistake
than a choice.
"""

import os
import warnings

import numpy as np
import tensorflow as tf

from keras_tl.data.records import Records

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLIT_ALIASES = {"val": ("val", "validation"), "validation": ("validation", "val")}


def image_root(path):
    """The folder holding the class folders: `<path>/images` if present, else `<path>`."""
    nested = os.path.join(path, "images")
    return nested if os.path.isdir(nested) else path


def split_file(path, split):
    for name in SPLIT_ALIASES.get(split, (split,)):
        candidate = os.path.join(path, f"{name}.txt")
        if os.path.isfile(candidate):
            return candidate
    return None


def load_folder(path, split=None):
    """`Records` of `split` ("train", "test", "val"; `None` or "all" for every image) under `path`."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Expected an image folder. Received: folder:{path} (no such directory)")
    root = image_root(path)
    class_names = sorted(
        entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_names:
        raise ValueError(f"Expected class sub-folders in {root}. Received: none")
    empty = [name for name in class_names if not _has_image(os.path.join(root, name))]
    if empty:
        raise ValueError(
            f"Expected every class folder of {root} to hold images. Received empty class folder(s): "
            f"{empty}. Remove them or add images: each class folder becomes an output of the model."
        )
    if split in (None, "all"):
        relative = _walk(root, class_names)
    else:
        listing = split_file(path, split)
        if listing is None:
            present = sorted(f for f in os.listdir(path) if f.endswith(".txt"))
            raise FileNotFoundError(
                f"Expected a split file {split}.txt in {path} for split={split!r}. Found split files: "
                f"{present}. Use split='all' (or None) to read every image."
            )
        relative = _read_listing(listing, root, class_names)
        if not relative:
            raise ValueError(
                f"Expected {listing} to list images of {root} for split={split!r}. Received: no existing "
                "image in it (an empty file, or only missing or non-image entries)."
            )
    labels = np.array([class_names.index(p.split("/", 1)[0]) for p in relative], np.int64)
    paths = np.array([os.path.join(root, p) for p in relative])

    def rows(indices):
        dataset = tf.data.Dataset.from_tensor_slices((indices, paths[indices], labels[indices]))
        return dataset.map(
            lambda index, file, label: (index, tf.io.read_file(file), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Records(
        class_names=class_names,
        indexed=lambda: rows(np.arange(len(paths), dtype=np.int64)),
        labels=labels,
        names=relative,
        select=rows,
        description=f"folder:{path} (split={split})",
    )


def _walk(root, class_names):
    images, ignored = [], []
    for name in class_names:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames.sort()
            for filename in sorted(filenames):
                relative = os.path.relpath(os.path.join(dirpath, filename), root).replace(os.sep, "/")
                (images if filename.lower().endswith(IMAGE_EXTENSIONS) else ignored).append(relative)
    _warn_ignored(ignored, root)
    return images


def _has_image(folder):
    for _, _, filenames in os.walk(folder):
        if any(name.lower().endswith(IMAGE_EXTENSIONS) for name in filenames):
            return True
    return False


def _read_listing(listing, root, class_names):
    with open(listing) as handle:
        lines = [line.strip() for line in handle if line.strip()]
    images = [line for line in lines if line.lower().endswith(IMAGE_EXTENSIONS)]
    _warn_ignored([line for line in lines if not line.lower().endswith(IMAGE_EXTENSIONS)], listing)
    unknown = sorted({line.split("/", 1)[0] for line in images} - set(class_names))
    if unknown:
        raise ValueError(
            f"Expected every entry of {listing} to start with a class folder of {root}. "
            f"Received entries in unknown class folders: {unknown[:10]}"
        )
    missing = [line for line in images if not os.path.isfile(os.path.join(root, line))]
    if missing:
        # Said here: the image scan would count them as "unreadable or corrupt", which sends the
        # user looking at file contents rather than at the split file.
        warnings.warn(
            f"Skipped {len(missing)} missing image(s) listed in {listing} (no such file under {root}): "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}",
            stacklevel=3,
        )
        absent = set(missing)
        images = [line for line in images if line not in absent]
    return images


def _warn_ignored(ignored, where):
    if ignored:
        warnings.warn(
            f"Ignored {len(ignored)} non-image file(s) in {where} (expected extensions "
            f"{IMAGE_EXTENSIONS}): {ignored[:5]}{' ...' if len(ignored) > 5 else ''}",
            stacklevel=4,
        )
