"""Exports a saved classifier as a SavedModel for TensorFlow Serving.

    python -m apps.export --model=runs/finetune/best_model.keras --base_dir=saved_models --name=digits

Writes `<base_dir>/<name>/<version>/` (the next version unless --version is given; an
existing version is never overwritten) with two signatures: `serving_default` on float
images in 0..255 and `serving_bytes` on encoded images (see docs/APPS.md for serving it).
"""

import dataclasses

from absl import flags

from apps import common, flag_groups
from keras_tl import models
from keras_tl.data import transforms
from keras_tl.export import export_serving
from keras_tl.models.cards import PREPROCESS_CHOICES

FLAGS = flags.FlagValues()
flag_groups.define_loading_flag(FLAGS)
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
    f"Input preprocessing; empty: the model card's. One of {list(PREPROCESS_CHOICES)}.",
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
flag_groups.validator(FLAGS, "preprocess", flag_groups.check_preprocess)
flag_groups.validate_finite(FLAGS)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """One `apps.export` run: the flags of the same names (see `--help`)."""

    model: str = "runs/finetune/best_model.keras"
    unsafe_deserialization: bool = False
    base_dir: str = "saved_models"
    name: str = ""
    version: int = 0
    preprocess: str = ""
    resize_ratio: float = transforms.DEFAULT_RESIZE_RATIO
    image_size: int = 0

    from_flags = classmethod(common.from_flags)


def run(config):
    """Exports as `config` (an `ExportConfig`) says; returns the version folder."""
    model, card = models.load_model_and_card(config.model, config.unsafe_deserialization)
    image_size = (config.image_size,) * 2 if config.image_size else None
    if image_size is None and None in models.cards.input_size(model) and card.get("image_size"):
        image_size = tuple(card["image_size"])  # what the model was trained at
    return export_serving(
        model,
        config.base_dir,
        name=config.name or common.export_name(card.get("dataset", "")) or model.name,
        version=config.version or None,
        preprocess=models.resolve_preprocess(config.preprocess, card, model.name),
        image_size=image_size,
        resize_ratio=config.resize_ratio,
    )


def main(argv):
    del argv
    path = run(ExportConfig.from_flags(FLAGS))
    print(f"SavedModel written to {path} (signatures serving_default, serving_bytes)")


if __name__ == "__main__":
    common.run(main, FLAGS)
