"""Keras core's RandAugment, MixUp and CutMix in `keras_tl.data.load`, every draw keyed (resume-safe).

`load(augment=...)` takes a name, a `+`-joined list of names (`"randaugment+mixup"`) or a list of
names and Keras layers (`["keras", keras.layers.RandAugment(factor=0.3), keras.layers.MixUp(0.4)]`):
first the crop ("keras": random crop and flip, `transforms.KerasAugmentation`; "none": the
center crop), then per-image layers (RandAugment, or any Keras image augmentation layer), then
at most one batch-level mix (MixUp or CutMix), which also mixes the labels (one-hot → mixtures).

Keras' layers draw from a `SeedGenerator` whose state advances with every image, so a resumed
run (or one whose method read the training data first) would see other draws than an
uninterrupted one. `KeyedLayer` makes each draw a function of the example's key instead
(`(seed, epoch, position)`, as for the crops): the i-th seed a layer asks for in one call is
`fold_in(key, i)`, so a call is a pure function of (image, key), in parallel and on every backend.
"""

import keras
import tensorflow as tf

CROPS = ("keras", "none")
# Per-image layers and batch-level mixes by name; Keras' defaults (MixUp α = 0.2, "recommended for
# ImageNet-1k"; CutMix Beta(1, 1) as its paper; RandAugment 2 ops at factor 0.5), on 0..255 images.
LAYERS = {
    "randaugment": lambda: keras.layers.RandAugment(value_range=(0, 255), dtype="float32"),
    "mixup": lambda: keras.layers.MixUp(dtype="float32"),
    "cutmix": lambda: keras.layers.CutMix(dtype="float32"),
}
MIXES = ("mixup", "cutmix")
# The names the apps' --augment offers.
CHOICES = CROPS + tuple(LAYERS) + ("randaugment+mixup", "randaugment+cutmix")
# Key streams, apart from the crop's (`KerasAugmentation` splits the example key itself).
_IMAGE_STREAM, _MIX_STREAM = 1_000, 2_000


class KeyedSeeds(keras.random.SeedGenerator):
    """A `SeedGenerator` whose i-th draw in a traced call is `fold_in(key, i)`, not a stored state.

    Set `key` (a `[2]` int tensor) and `count = 0` before each call of the layer; the counter
    runs at trace time, so each draw site of the layer gets its own stream of the key.
    """

    def __init__(self):
        super().__init__(seed=0)  # Its state variable is never read: `next` replaces it.
        self.key = None
        self.count = 0

    def next(self, ordered=True):
        del ordered
        self.count += 1
        return tf.random.experimental.stateless_fold_in(tf.cast(self.key, tf.int64), self.count)


class KeyedLayer:
    """Calls a Keras image augmentation layer (inside `tf.data`) with every draw a function of a key.

    Keras' image preprocessing layers (RandAugment and its sub-layers, MixUp, CutMix, the
    `Random*` layers) take all their seeds from the layer's `_get_seed_generator`; for the call
    it returns `KeyedSeeds`. `tests/data/test_augmentation.py` checks that a key gives the same
    draw whatever ran before, so a Keras release that draws otherwise fails there, not silently.
    """

    def __init__(self, layer):
        if not (isinstance(layer, keras.layers.Layer) and hasattr(layer, "_get_seed_generator")):
            raise ValueError(
                "Expected a Keras image augmentation layer (keras.layers.RandAugment, MixUp, CutMix, Random*, "
                f"which draw from a seed generator). Received: layer={layer!r}"
            )
        self.layer = layer
        self.seeds = KeyedSeeds()
        self.mixes = isinstance(layer, (keras.layers.MixUp, keras.layers.CutMix))

    def __call__(self, data, key):
        self.seeds.key, self.seeds.count = key, 0
        self.layer._get_seed_generator = lambda backend=None: self.seeds
        try:
            return self.layer(data, training=True)
        finally:
            del self.layer._get_seed_generator


def parse(augment):
    """`augment` (a name, `+`-joined names, or a list of names and Keras layers; not a plain callable)
    → `(crop, image_layers, mix)`: `"keras"`/`"none"`, keyed per-image layers, a keyed batch-level
    mix or None. Raises `ValueError` naming `augment`."""
    if isinstance(augment, str):
        stages = augment.split("+")
    elif isinstance(augment, (list, tuple)):
        stages = list(augment)
    else:
        raise _unknown(augment)
    crop = stages.pop(0) if stages and isinstance(stages[0], str) and stages[0] in CROPS else "keras"
    image_layers, mix = [], None
    for stage in stages:
        if isinstance(stage, str) and stage in LAYERS:
            stage = LAYERS[stage]()
        if isinstance(stage, str) or not isinstance(stage, keras.layers.Layer):
            raise _unknown(augment)
        keyed = KeyedLayer(stage)
        if keyed.mixes and mix is not None:
            raise ValueError(f"Expected at most one of MixUp and CutMix. Received: augment={augment!r}")
        if not keyed.mixes and mix is not None:
            raise ValueError(f"Expected MixUp/CutMix last (they mix batches). Received: augment={augment!r}")
        if keyed.mixes:
            mix = keyed
        else:
            image_layers.append(keyed)
    return crop, image_layers, mix


def _unknown(augment):
    return ValueError(
        f"Expected augment to be one of {CHOICES}, names from {CROPS + tuple(LAYERS)} joined by '+' (the crop "
        f"first, at most one of {MIXES}, last), a list of such names and Keras augmentation layers, or a "
        f"callable. Received: augment={augment!r}"
    )


def apply_image_layers(layers, image, key):
    """`image` through each keyed per-image layer, each on its own stream of the example's `key`."""
    for index, layer in enumerate(layers):
        stream = tf.random.experimental.stateless_fold_in(tf.cast(key, tf.int64), _IMAGE_STREAM + index)
        image = tf.cast(layer(image, stream), tf.float32)
    return image


def apply_mix(mix, images, labels, keys, num_classes):
    """A batch mixed by `mix` (MixUp/CutMix): float32 images and label mixtures `[batch, classes]`.

    The batch's key is its first example's key on the mix's own stream: examples' positions are
    unique within an epoch, so each batch of each epoch draws anew.
    """
    key = tf.random.experimental.stateless_fold_in(tf.cast(keys[0], tf.int64), _MIX_STREAM)
    out = mix({"images": images, "labels": tf.one_hot(labels, num_classes, dtype=tf.float32)}, key)
    return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)
