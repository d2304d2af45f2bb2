"""Evaluates a classifier: top-1 and mean per-class accuracy, by center crop and by 10-crop.

    python -m apps.evaluate --model=runs/finetune/best_model.keras
    python -m apps.evaluate --model=my.keras --dataset=folder:../shared/data/dtd10 \\
        --split=test --preprocess=cifar_resnet20 --crops=center,ten

The model is a saved Keras classifier returning logits (`apps.finetune` writes one, with a
card beside it that gives its data set, classes and preprocessing; flags override the card).
"""

import json

from absl import flags

from apps import common
from keras_tl.data import evaluate as evaluate_model
from keras_tl.data import transforms

FLAGS = flags.FlagValues()
common.define_loading_flag(FLAGS)
flags.DEFINE_string(
    "model", "runs/finetune/best_model.keras", "The saved classifier (.keras).", flag_values=FLAGS
)
common.define_data_flags(FLAGS, dataset="", split="test")
flags.DEFINE_list(
    "crops", ["center", "ten"], f"Evaluation crops, from {list(transforms.CROPS)}.", flag_values=FLAGS
)
flags.DEFINE_string("output", "", "Also write the results to this JSON file.", flag_values=FLAGS)
FLAGS["classes"].help += " Empty: the model card's classes if any."
FLAGS["dataset"].help += " Empty: the model card's data set."
common.validator(FLAGS, "crops", lambda crops: _check_crops(crops))


def _check_crops(crops):
    unknown = [crop for crop in crops if crop not in transforms.CROPS]
    if unknown or not crops:
        raise ValueError(f"Expected --crops from {list(transforms.CROPS)}. Received: {crops}")


def run(fv):
    """Evaluates with the parsed flags `fv`; returns `{crops: {"top1", "mean_per_class"}, ...}`."""
    model = common.load_keras_model(fv.model, fv.unsafe_deserialization)
    card = common.load_card(fv.model)
    size = (fv.image_size,) * 2 if fv.image_size else common.input_size(model)
    preprocess = common.resolve_preprocess(fv.preprocess, card, model.name)
    view = common.FlagView(
        dataset=fv.dataset or card.get("dataset") or "",
        classes=fv.classes or ([str(c) for c in card["class_names"]] if card.get("class_names") else []),
        data_dir=fv.data_dir,
        batch_size=fv.batch_size,
    )
    if not view.dataset:
        raise ValueError("Expected --dataset (the model has no card naming its data set).")
    common.check_spec(view.dataset)
    results = {"model": fv.model, "dataset": view.dataset, "split": fv.split}
    for crops in fv.crops:
        split = common.load_split(view, fv.split, size, preprocess, training=False, crops=crops)
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
    results = run(FLAGS)
    for crops in FLAGS.crops:
        print(
            f"{crops:>6} crop: top-1 {100 * results[crops]['top1']:.2f} %, mean per-class "
            f"{100 * results[crops]['mean_per_class']:.2f} % ({results['examples']} examples)"
        )
    if FLAGS.output:
        with open(FLAGS.output, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    common.run(main, FLAGS)
