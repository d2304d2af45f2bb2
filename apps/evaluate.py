"""Evaluates a classifier: top-1 and mean per-class accuracy, by center crop and by 10-crop.

    python -m apps.evaluate --model=runs/finetune/best_model.keras
    python -m apps.evaluate --model=my.keras --dataset=folder:../shared/data/dtd10 \\
        --split=test --preprocess=cifar_resnet20 --crops=center,ten

The model is a saved Keras classifier returning logits (`apps.finetune` writes one, with a
card beside it that gives its data set, classes and preprocessing; flags override the card).
"""

import dataclasses
import json

from absl import flags

from apps import common, flag_groups
from keras_tl import models
from keras_tl.data import evaluate as evaluate_model
from keras_tl.data import parse_spec, transforms
from keras_tl.data.classes import check_same_classes

FLAGS = flags.FlagValues()
flag_groups.define_loading_flag(FLAGS)
flags.DEFINE_string(
    "model", "runs/finetune/best_model.keras", "The saved classifier (.keras).", flag_values=FLAGS
)
flag_groups.define_data_flags(FLAGS, dataset="", split="test")
flags.DEFINE_list(
    "crops", ["center", "ten"], f"Evaluation crops, from {list(transforms.CROPS)}.", flag_values=FLAGS
)
flags.DEFINE_string("output", "", "Also write the results to this JSON file.", flag_values=FLAGS)
FLAGS["classes"].help += " Empty: the model card's classes if any."
FLAGS["dataset"].help += " Empty: the model card's data set."
flag_groups.validator(FLAGS, "crops", lambda crops: _check_crops(crops))


def _check_crops(crops):
    unknown = [crop for crop in crops if crop not in transforms.CROPS]
    if unknown or not crops:
        raise ValueError(f"Expected --crops from {list(transforms.CROPS)}. Received: {crops}")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(common.DataConfig):
    """One `apps.evaluate` run: the flags of the same names (see `--help`), lists as tuples."""

    dataset: str = ""
    split: str = "test"
    model: str = "runs/finetune/best_model.keras"
    unsafe_deserialization: bool = False
    crops: tuple = ("center", "ten")
    output: str = ""


def run(config):
    """Evaluates as `config` (an `EvaluateConfig`) says; returns `{crops: {"top1", "mean_per_class"}, ...}`."""
    model, card = models.load_model_and_card(config.model, config.unsafe_deserialization)
    size = (config.image_size,) * 2 if config.image_size else models.cards.input_size(model)
    preprocess = models.resolve_preprocess(config.preprocess, card, model.name)
    data = dataclasses.replace(
        config,
        dataset=config.dataset or card.get("dataset") or "",
        classes=config.classes or tuple(str(c) for c in card.get("class_names") or ()),
    )
    if not data.dataset:
        raise ValueError("Expected --dataset (the model has no card naming its data set).")
    parse_spec(data.dataset)
    results = {"model": config.model, "dataset": data.dataset, "split": config.split}
    for crops in config.crops:
        split = common.load_split(data, config.split, size, preprocess, training=False, crops=crops)
        if card.get("class_names"):
            check_same_classes(card["class_names"], split.class_names, f"--dataset={data.dataset} --split={config.split}")
        if split.num_classes != int(model.outputs[0].shape[-1]):
            raise ValueError(
                f"Expected the data set's {split.num_classes} classes to match the model's "
                f"{model.outputs[0].shape[-1]} outputs. Set --classes."
            )
        results[crops] = evaluate_model(model, split.dataset, split.num_classes)
        results["examples"] = split.num_examples
    return results


def main(argv):
    del argv
    config = EvaluateConfig.from_flags(FLAGS)
    results = run(config)
    for crops in config.crops:
        print(
            f"{crops:>6} crop: top-1 {100 * results[crops]['top1']:.2f} %, mean per-class "
            f"{100 * results[crops]['mean_per_class']:.2f} % ({results['examples']} examples)"
        )
    if config.output:
        with open(config.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    common.run(main, FLAGS)
