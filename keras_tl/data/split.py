"""`Split`: a batched `tf.data` pipeline with what training on it needs to know (classes, size, epochs)."""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class Split:
    """What `keras_tl.data.load` and `keras_tl.data.as_split` return.

    Attributes:
        dataset: `tf.data.Dataset` of `(images, labels)` batches: float32 images
            `[batch, H, W, 3]` (`[batch, 10, H, W, 3]` with `crops="ten"`) already preprocessed
            for the backbone, int32 labels (float32 `[batch, classes]` label mixtures after
            MixUp/CutMix, see `mixed`). It feeds `fit`/`evaluate` on every backend.
        class_names: the name of each label of the returned labels.
        labels: int array, the label of every example the dataset yields (in reading order,
            before any shuffling), e.g. for per-class counts.
        image_size: `(H, W)`.
        batch_size: examples per batch (the last batch may be smaller).
        epoch: with `training=True`, the `tf.Variable` epoch index the next pass shuffles
            with (each pass reads it, then adds 1); `None` otherwise. A resumed `fit` sets it
            at each epoch's start (`epoch_callback`), so the order does not depend on how many
            epochs ran in this process.
        batches: batches per epoch when that is not `num_examples // batch_size` (a plain
            dataset that keeps its short last batch); None: full batches only.
        unmixed_dataset: with MixUp/CutMix, the same batches before mixing (int labels), which
            data-dependent preparations measure; None: no mixing.
        selection: the `load` arguments that selected and transformed the examples (spec,
            split, classes, per_class, seed, image_size, preprocess, augment, training, ...),
            JSON-safe; a run's identity (`keras_tl.utils.run_identity`) records them. None for a
            split made otherwise (`as_split`).
    """

    dataset: tf.data.Dataset
    class_names: list
    labels: np.ndarray
    image_size: tuple
    epoch: tf.Variable = None
    batch_size: int | None = None
    batches: int | None = None
    unmixed_dataset: tf.data.Dataset | None = None
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

    @property
    def steps_per_epoch(self):
        """Batches per epoch (at least 1): `batches`, else the full batches `num_examples // batch_size`."""
        return max(1, self.batches or self.num_examples // self.batch_size)

    @property
    def mixed(self):
        """Whether `dataset` yields MixUp/CutMix label mixtures `[batch, classes]` instead of int labels."""
        return self.unmixed_dataset is not None

    def unmixed(self):
        """This split with the batches before MixUp/CutMix (itself when nothing is mixed)."""
        if not self.mixed:
            return self
        return dataclasses.replace(self, dataset=self.unmixed_dataset, unmixed_dataset=None)

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
