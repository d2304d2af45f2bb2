"""Fine-tunes a source network on a target data set with several methods and reports mean ± std.

    python -m apps.finetune          # the embedded demo: offline, a few minutes on 2 CPU cores

With no flags it runs end to end on scikit-learn's handwritten digits (real, shipped with
scikit-learn): pre-train a CIFAR ResNet-20 source on the digits 0-4 (16×16 RGB), fine-tune
it on 30 examples of each of the digits 5-9 with L2, L2-FE, L2-SP and L2-SP + DTNH, evaluate
on the held-out digits 5-9 (center crop and 10-crop), print the results table, and export
the best model as a SavedModel for TF Serving. Real use names a source and a data set:

    python -m apps.finetune --source=runs/tin/source.keras \\
        --dataset=folder:../shared/data/dtd10 --image_size=32 \\
        --method=l2,l2_sp,l2_sp+dtnh --repeats=5 --per_class=30 --epochs=30

Each run is checkpointed every epoch (`AtomicBackupAndRestore`, in --backup_dir): after a crash,
run the same command again and it resumes from the last finished epoch with the same result.
Writes to --output_dir: results.json, results.md, learning_curves.png (and dtnh_angles.png),
tensorboard/<method>/seed<k>/, best_model.keras (+ .json card), saved_models/<name>/<version>/.
"""

import os
import time

import keras
from absl import flags, logging

from apps import common, reporting, training
from keras_tl import backbones, methods
from keras_tl.data import parse_spec
from keras_tl.export import export_serving

DEMO_IMAGE_SIZE = 16

FLAGS = flags.FlagValues()
DIGITS_CLASSES = ("5", "6", "7", "8", "9")
common.define_data_flags(FLAGS, digits_classes=DIGITS_CLASSES)
common.define_sampling_flags(FLAGS)
common.define_training_flags(FLAGS, epochs=10, lr=0.005, output_dir="runs/finetune")
# Few-shot count of the embedded demo (--dataset=digits without --per_class/--fraction); any
# other data set trains on all its images unless told otherwise.
DEMO_PER_CLASS = 30
FLAGS["per_class"].help += f" The digits demo: {DEMO_PER_CLASS} unless --per_class or --fraction is set."
FLAGS.set_default("batch_size", 16)
flags.DEFINE_string("eval_split", "test", "Split the results are measured on.", flag_values=FLAGS)
flags.DEFINE_string(
    "source",
    "",
    f"A backbone name from {list(backbones.NAMES)} (with --source_weights), or a saved source model (.keras, "
    "e.g. from apps.pretrain). Empty: pre-train one first with the --source_* flags (the embedded demo).",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "source_weights", "", "Weights of a backbone-name --source: 'imagenet' or a file.", flag_values=FLAGS
)
flags.DEFINE_list(
    "taps", [], "Feature layers regularizers see; empty: the backbone's defaults.", flag_values=FLAGS
)
flags.DEFINE_list(
    "method",
    ["l2", "l2_fe", "l2_sp", "l2_sp+dtnh"],
    f"Methods to run, each from {sorted(methods.METHODS)}, optionally with '{methods.DTNH_SUFFIX}'.",
    flag_values=FLAGS,
)
flags.DEFINE_boolean("dtnh", False, "Combine every method with DTNH.", flag_values=FLAGS)
flags.DEFINE_list(
    "hparams",
    [],
    "Method hyperparameters 'name=value' (all methods that have it) or "
    "'method.name=value', e.g. alpha=0.1,l2.beta=0.001.",
    flag_values=FLAGS,
)
flags.DEFINE_float(
    "dropout", 0.0, "Dropout before the new head.", lower_bound=0.0, upper_bound=0.99, flag_values=FLAGS
)
flags.DEFINE_integer(
    "repeats",
    1,
    "Runs per method, with seeds seed..seed+N-1 (each its own few-shot sample).",
    lower_bound=1,
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "ten_crop",
    None,
    "Also evaluate by 10-crop (5 crops and their mirror images); default: on when --flip is.",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "validation_freq",
    1,
    "Evaluate --eval_split during training every N epochs (0: only after training).",
    lower_bound=0,
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "export", True, "Export the best method's first model for TF Serving.", flag_values=FLAGS
)
flags.DEFINE_string(
    "export_dir", "", "SavedModel base folder; empty: <output_dir>/saved_models.", flag_values=FLAGS
)
flags.DEFINE_string(
    "export_name", "", "Model name under --export_dir; empty: from --dataset.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "verbose", 2, "Keras fit verbosity (0, 1 or 2).", lower_bound=0, upper_bound=2, flag_values=FLAGS
)
# The embedded demo's source (used only when --source is empty).
flags.DEFINE_string(
    "source_dataset", "digits", "Data set the demo source is pre-trained on.", flag_values=FLAGS
)
flags.DEFINE_list(
    "source_classes", ["0", "1", "2", "3", "4"], "Classes of --source_dataset.", flag_values=FLAGS
)
flags.DEFINE_enum(
    "source_backbone",
    "cifar_resnet20",
    list(backbones.CIFAR_NAMES),
    "Demo source architecture.",
    flag_values=FLAGS,
)
flags.DEFINE_integer(
    "source_epochs", 10, "Demo source pre-training epochs.", lower_bound=1, flag_values=FLAGS
)
flags.DEFINE_integer(
    "source_batch_size", 64, "Demo source pre-training batch size.", lower_bound=1, flag_values=FLAGS
)
flags.DEFINE_float(
    "source_lr", 0.1, "Demo source pre-training learning rate.", lower_bound=0.0, flag_values=FLAGS
)

flags.DEFINE_string(
    "backup_dir",
    "",
    "Checkpoint folder (a subfolder per method and seed); empty: <output_dir>/backup.",
    flag_values=FLAGS,
)
common.define_distribute_flag(FLAGS)
common.define_loading_flag(FLAGS)
common.validator(FLAGS, "method", methods.check_entries)
common.validator(FLAGS, "source_dataset", parse_spec)
common.validate_finite(FLAGS)


def parse_hparams(values):
    """`["alpha=0.1", "k=2", "l2.beta=1e-3"]` → `{"alpha": 0.1, "k": 2, "l2.beta": 0.001}`."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"Expected --hparams entries 'name=value'. Received: {item!r}")
        for kind in (int, float, str):
            try:
                parsed[key] = kind(value)
                break
            except ValueError:
                continue
    return parsed


flags.register_multi_flags_validator(
    ["method", "hparams"],
    lambda values: _check_hparams(values["method"], values["hparams"]),
    message="",
    flag_values=FLAGS,
)


def _check_hparams(entries, values):
    try:
        methods.check_entries(entries)
        hparams = parse_hparams(values)
        methods.check_hparams(entries, hparams)
        check_hparam_values(entries, hparams)
    except ValueError as error:
        raise flags.ValidationError(f"--hparams: {error}") from error
    return True


def check_hparam_values(entries, hparams):
    """Raises `ValueError` for a value whose type does not fit the hyperparameter (at parse time, not
    after the data is loaded); see `keras_tl.methods.check_hparam`."""
    for key, value in hparams.items():
        method, _, name = key.rpartition(".")
        chosen = [method] if method else [methods.split_entry(entry)[0] for entry in entries]
        for candidate in chosen:
            if name in methods.hparam_names(candidate):
                methods.check_hparam(candidate, key, value)


def pretrain_demo_source(fv, size):
    """Pre-trains the demo source (the --source_* flags) and returns its path."""
    source_flags = {
        "dataset": fv.source_dataset,
        "classes": fv.source_classes,
        "data_dir": fv.data_dir,
        "batch_size": fv.source_batch_size,
        "augment": fv.augment,
        "flip": fv.flip,
    }
    view = common.FlagView(**source_flags)
    preprocess = fv.source_backbone
    keras.utils.set_random_seed(fv.seed)
    train = common.load_split(view, "train", size, preprocess, training=True, seed=fv.seed)
    output = os.path.join(fv.output_dir, "source", "source.keras")
    logging.info(
        "Pre-training the demo source %s on %s %s", fv.source_backbone, fv.source_dataset, fv.source_classes
    )
    training.pretrain(
        train,
        fv.source_backbone,
        size,
        batch_size=fv.source_batch_size,
        epochs=fv.source_epochs,
        lr=fv.source_lr,
        preprocess=preprocess,
        output=output,
        seed=fv.seed,
        verbose=fv.verbose,
        # A few hundred steps: the moving statistics must converge within them (see `pretrain`).
        bn_momentum=0.9,
        distribute=fv.distribute,
        backup_dir=os.path.join(fv.backup_dir or os.path.join(fv.output_dir, "backup"), "source"),
    )
    return output


def per_class(fv):
    """--per_class, or the demo's `DEMO_PER_CLASS` for --dataset=digits when neither it nor --fraction is set."""
    demo = fv.dataset == "digits" and not fv["per_class"].present and not fv["fraction"].present
    return DEMO_PER_CLASS if demo else fv.per_class


def run(fv):
    """Runs everything with the parsed flags `fv`; returns the report dict."""
    start = time.perf_counter()
    os.makedirs(fv.output_dir, exist_ok=True)
    source = fv.source
    if not source:
        source = pretrain_demo_source(fv, (fv.image_size or DEMO_IMAGE_SIZE,) * 2)
    image_size = (fv.image_size,) * 2 if fv.image_size else None
    source_model, taps, preprocess, size = training.make_source(
        source, fv.source_weights, image_size, fv.unsafe_deserialization, seed=fv.seed
    )
    if image_size and tuple(image_size) != tuple(size):
        raise ValueError(
            f"Expected --image_size to match the source's input {size}. Received: {fv.image_size}"
        )
    taps = fv.taps or taps
    preprocess = fv.preprocess or preprocess
    digits = {"digits_classes": DIGITS_CLASSES}
    eval_data = common.load_split(fv, fv.eval_split, size, preprocess, training=False, **digits)
    with_ten_crop = common.flip_for(fv.dataset, fv.flip) if fv.ten_crop is None else fv.ten_crop
    ten_crop = None
    if with_ten_crop:
        ten_crop = common.load_split(
            fv, fv.eval_split, size, preprocess, training=False, crops="ten", **digits
        )
    hparams = parse_hparams(fv.hparams)
    sampling = common.FlagView(**{**fv.flag_values_dict(), "per_class": per_class(fv)})
    report = {
        "backend": keras.backend.backend(),
        "flags": fv.flag_values_dict(),
        "source": source,
        "class_names": eval_data.class_names,
        "eval_examples": eval_data.num_examples,
        "results": {},
        "complete": False,
    }
    results, best = report["results"], None  # best: (label, its first model); one model kept at a time
    for entry in fv.method:
        method, with_dtnh = methods.split_entry(entry)
        with_dtnh = with_dtnh or fv.dtnh
        label = method + (methods.DTNH_SUFFIX if with_dtnh else "")
        results[label] = {"runs": [], "summary": {}}
        first_model = None
        for repeat in range(fv.repeats):
            seed = fv.seed + repeat
            # The pipeline's shuffling and augmentation depend on TF's global seed: set it per run,
            # so a run does not depend on what ran before it in the process.
            keras.utils.set_random_seed(seed)
            train = common.load_split(
                sampling, fv.split, size, preprocess, training=True, seed=seed, sampled=True, **digits
            )
            logging.info("%s, seed %d: %s", label, seed, common.describe_counts(train))
            try:
                model, record = training.finetune(
                    source_model,
                    taps,
                    train,
                    eval_data,
                    method,
                    batch_size=fv.batch_size,
                    dtnh=with_dtnh,
                    hparams=hparams,
                    epochs=fv.epochs,
                    lr=fv.lr,
                    momentum=fv.momentum,
                    dropout=fv.dropout,
                    seed=seed,
                    log_dir=os.path.join(fv.output_dir, "tensorboard", label, f"seed{seed}"),
                    ten_crop_data=ten_crop,
                    verbose=fv.verbose,
                    distribute=fv.distribute,
                    validation_freq=fv.validation_freq,
                    backup_dir=os.path.join(
                        fv.backup_dir or os.path.join(fv.output_dir, "backup"), label, f"seed{seed}"
                    ),
                )
            except FloatingPointError as error:
                # NaNGuard: one diverged method must not lose the others (nor the finished runs).
                logging.warning("%s diverged (seed %d): %s", label, seed, error)
                results[label]["diverged"] = {"seed": seed, "error": str(error)}
                break
            results[label]["runs"].append(record)
            results[label]["summary"] = reporting.summarize(results[label]["runs"])
            first_model = first_model or model
            # Each finished run is on disk at once: a crash or kill later loses nothing before it.
            reporting.write(fv.output_dir, report)
        top1 = results[label]["summary"].get("top1", {}).get("mean")
        if "diverged" not in results[label] and (
            best is None or top1 > results[best[0]]["summary"]["top1"]["mean"]
        ):
            best = (label, first_model)

    finished = {label: result for label, result in results.items() if "diverged" not in result}
    table = reporting.markdown_table(results)
    if best is None:
        reporting.write(fv.output_dir, report, table)
        raise FloatingPointError(
            f"Every method diverged; results in {os.path.join(fv.output_dir, 'results.json')}. "
            + " ".join(f"{label}: {result['diverged']['error']}" for label, result in results.items())
        )
    plots = reporting.plot(fv.output_dir, finished)
    card = {
        "kind": "classifier",
        "method": best[0],
        "preprocess": preprocess,
        "image_size": list(size),
        "class_names": eval_data.class_names,
        "dataset": fv.dataset,
    }
    model_path = os.path.join(fv.output_dir, "best_model.keras")
    common.save_model(best[1].inference_model(name="classifier"), model_path, card)
    report["best"] = {"method": best[0], "model": model_path}
    if fv.export:
        name = fv.export_name or common.export_name(fv.dataset) or "model"
        report["best"]["saved_model"] = export_serving(
            best[1],
            fv.export_dir or os.path.join(fv.output_dir, "saved_models"),
            name=name,
            preprocess=preprocess,
        )
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["complete"] = True
    reporting.write(fv.output_dir, report, table)
    report["table"], report["plots"] = table, plots
    return report


def main(argv):
    del argv
    report = run(FLAGS)
    print()
    print(report["table"])
    print()
    best = report["best"]
    print(
        f"Best: {best['method']} -> {best['model']}"
        + (f", SavedModel {best['saved_model']}" if "saved_model" in best else "")
    )
    print(f"Results: {os.path.join(FLAGS.output_dir, 'results.json')}, results.md, plots {report['plots']}")
    print(f"Wall time: {report['wall_seconds']} s on the {report['backend']} backend")


if __name__ == "__main__":
    common.run(main, FLAGS)
