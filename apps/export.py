"""Exports a saved classifier as a SavedModel for TensorFlow Serving.

    python -m apps.export --model=runs/finetune/best_model.keras --base_dir=saved_models --name=digits

Writes `<base_dir>/<name>/<version>/` (the next version unless --version is given; an
existing version is never overwritten) with two signatures: `serving_default` on float
images in 0..255 and `serving_bytes` on encoded images (see docs/APPS.md for serving it).
"""

from absl import flags

from apps import common
from keras_tl.data import transforms
from keras_tl.export import export_serving

FLAGS = flags.FlagValues()
common.define_loading_flag(FLAGS)
flags.DEFINE_string(
    "model", "runs/finetune/best_model.keras", "The saved classifier (.keras).", flag_values=FLAGS
)
flags.DEFINE_string("base_dir", "saved_models", "TF Serving's model base folder.", flag_values=FLAGS)
flags.DEFINE_string(
    "name", "", "Model name (a folder under --base_dir); empty: the card's data set name.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "version",
    0,
    "Version number; 0: one more than the largest existing one.",
    lower_bound=0,
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "preprocess",
    "",
    f"Input preprocessing; empty: the model card's. One of {list(common.PREPROCESS_CHOICES)}.",
    flag_values=FLAGS,
)
flags.DEFINE_float(
    "resize_ratio",
    transforms.DEFAULT_RESIZE_RATIO,
    "Resize / crop size of the bytes signature's center crop.",
    lower_bound=1.0,
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "image_size",
    0,
    "Input size to export at, for a model whose input has no fixed size; 0: the model's (or its card's).",
    lower_bound=0,
    flag_values=FLAGS,
)
common.validator(FLAGS, "preprocess", common.check_preprocess)
common.validate_finite(FLAGS)


def run(fv):
    """Exports with the parsed flags `fv`; returns the version folder."""
    model = common.load_keras_model(fv.model, fv.unsafe_deserialization)
    card = common.load_card(fv.model)
    preprocess = common.resolve_preprocess(fv.preprocess, card, model.name)
    name = fv.name or common.export_name(card.get("dataset", "")) or model.name
    image_size = (fv.image_size,) * 2 if fv.image_size else None
    if image_size is None and None in tuple(model.inputs[0].shape[1:3]) and card.get("image_size"):
        image_size = tuple(card["image_size"])  # what the model was trained at
    return export_serving(
        model,
        fv.base_dir,
        name=name,
        version=fv.version or None,
        preprocess=preprocess,
        image_size=image_size,
        resize_ratio=fv.resize_ratio,
    )


def main(argv):
    del argv
    path = run(FLAGS)
    print(f"SavedModel written to {path} (signatures serving_default, serving_bytes)")


if __name__ == "__main__":
    common.run(main, FLAGS)
