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

`--method=auto` lets `keras_tl.select` choose the method and its coefficient per seed on a
validation split (`apps.auto_select`; docs/SELECTION.md).

Each run is checkpointed every epoch (`AtomicBackupAndRestore`, in --backup_dir): after a crash,
run the same command again and it resumes from the last finished epoch with the same result.
A rerun with other flags over a folder's results or checkpoints is refused, naming the flags
that differ (--overwrite starts over), and so is a second process on the same --output_dir.
Writes to --output_dir: results.json, results.md, learning_curves.png (and dtnh_angles.png),
tensorboard/<method>/seed<k>/, best_model.keras (+ .json card), saved_models/<name>/<version>/.
"""

import dataclasses
import os
import time

import keras
from absl import flags, logging

from apps import auto_select, common, demo_source, flag_groups, method_flags, output_folder, reporting
from keras_tl import backbones, fine_tuning, models
from keras_tl.export import export_serving
from keras_tl.utils.policy import dtype_policy

DEMO_IMAGE_SIZE = 16

FLAGS = flags.FlagValues()
DIGITS_CLASSES = ("5", "6", "7", "8", "9")
flag_groups.define_data_flags(FLAGS, digits_classes=DIGITS_CLASSES)
flag_groups.define_sampling_flags(FLAGS)
flag_groups.define_training_flags(FLAGS, epochs=10, lr=0.005, output_dir="runs/finetune")
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
method_flags.define(FLAGS, ("l2", "l2_fe", "l2_sp", "l2_sp+dtnh"))
auto_select.define(FLAGS)
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
demo_source.define(FLAGS)

flags.DEFINE_string(
    "backup_dir",
    "",
    "Checkpoint folder (a subfolder per method and seed); empty: <output_dir>/backup.",
    flag_values=FLAGS,
)
flags.DEFINE_boolean(
    "overwrite",
    False,
    "Replace the results and checkpoints of a run with other settings in --output_dir and --backup_dir "
    "(by default such a rerun is refused, naming the flags that differ).",
    flag_values=FLAGS,
)
flag_groups.define_distribute_flag(FLAGS)
flag_groups.define_compute_flags(FLAGS)
flag_groups.define_loading_flag(FLAGS)
flag_groups.validate_finite(FLAGS)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(common.TrainingConfig):
    """One `apps.finetune` run: the flags of the same names (see `--help`), lists as tuples.

    `hparams` is a dict (`{"alpha": 0.1, "l2_sp.beta": 0.001}`); `per_class=None` means the
    demo's `DEMO_PER_CLASS` for `dataset="digits"` and all images otherwise.

    Example:
    >>> report = apps.finetune.run(FinetuneConfig(source="runs/tin/source.keras", method=("l2_sp",)))
    """

    # Defaults other than `common.TrainingConfig`'s, then the app's own fields.
    batch_size: int = 16
    per_class: int | None = None
    lr: float = 0.005
    output_dir: str = "runs/finetune"
    source: str = ""
    source_weights: str = ""
    taps: tuple = ()
    method: tuple = ("l2", "l2_fe", "l2_sp", "l2_sp+dtnh")
    dtnh: bool = False
    hparams: dict = dataclasses.field(default_factory=dict)
    plugins: tuple = ()
    dropout: float = 0.0
    repeats: int = 1
    ten_crop: bool | None = None
    validation_freq: int = 1
    export: bool = True
    export_dir: str = ""
    export_name: str = ""
    verbose: int = 2
    source_dataset: str = "digits"
    source_classes: tuple = ("0", "1", "2", "3", "4")
    source_backbone: str = "cifar_resnet20"
    source_epochs: int = 10
    source_batch_size: int = 64
    source_lr: float = 0.1
    unsafe_deserialization: bool = False
    select_validation: str = ""
    select_holdout: float = 0.2
    select_budget: float = 3.0
    select_candidates: tuple = ()
    overwrite: bool = False

    @classmethod
    def from_flags(cls, fv):
        # --per_class or --fraction given: as given; neither: None, the demo's count for digits.
        given = fv["per_class"].present or fv["fraction"].present
        return common.from_flags(
            cls, fv, hparams=method_flags.parse_hparams(fv.hparams), per_class=fv.per_class if given else None
        )

    def train_per_class(self):
        """`per_class`, or the demo's `DEMO_PER_CLASS` for `dataset="digits"` when it is None."""
        if self.per_class is not None:
            return self.per_class
        return DEMO_PER_CLASS if self.dataset == "digits" and not self.fraction else 0


def run(config):
    """Runs everything `config` (a `FinetuneConfig`) says; returns the report dict.

    Keras' global dtype policy is `config.dtype_policy` during the run (sources and targets are
    built under it), and what it was before afterwards. The run owns `config.output_dir` (see
    `apps.output_folder`): another process on the same folder, or a rerun with other settings
    over its results, is refused.
    """
    with dtype_policy(config.dtype_policy), output_folder.owned(config):
        return _run(config)


def _run(config):
    c = config
    start = time.perf_counter()
    os.makedirs(c.output_dir, exist_ok=True)
    source = c.source or demo_source.pretrain(c, (c.image_size or DEMO_IMAGE_SIZE,) * 2)
    image_size = (c.image_size,) * 2 if c.image_size else None
    source_model, taps, preprocess, size = models.load_source(
        source, c.source_weights or None, image_size, c.unsafe_deserialization, seed=c.seed, preprocess=c.preprocess
    )
    if image_size and tuple(image_size) != tuple(size):
        raise ValueError(f"Expected --image_size to match the source's input {size}. Received: {c.image_size}")
    taps = list(c.taps) or taps
    preprocess = c.preprocess or preprocess
    digits = {"digits_classes": DIGITS_CLASSES}
    eval_data = common.load_split(c, c.eval_split, size, preprocess, training=False, **digits)
    ten_crop = None
    if common.flip_for(c.dataset, c.flip) if c.ten_crop is None else c.ten_crop:
        ten_crop = common.load_split(c, c.eval_split, size, preprocess, training=False, crops="ten", **digits)
    sampling = dataclasses.replace(c, per_class=c.train_per_class())
    report = {
        "backend": keras.backend.backend(),
        "config": dataclasses.asdict(c),
        "source": source,
        "class_names": eval_data.class_names,
        "eval_examples": eval_data.num_examples,
        "results": {},
        "complete": False,
    }
    results, best = report["results"], None  # best: (label, its first model); one model kept at a time
    method_flags.import_plugins(c.plugins)
    for entry in c.method:
        # --method=auto: keras_tl.select chooses the method of each seed (apps.auto_select).
        method = None if entry == auto_select.AUTO else method_flags.method_for(entry, c.dtnh, c.hparams)
        label = entry if method is None else method.label
        results[label] = {"runs": [], "summary": {}}
        first_model = None
        for seed in range(c.seed, c.seed + c.repeats):
            # The pipeline's shuffling and augmentation depend on TF's global seed: set it per run,
            # so a run does not depend on what ran before it in the process.
            keras.utils.set_random_seed(seed)
            if method is None:
                train, validation = auto_select.splits(sampling, seed, size, preprocess, DIGITS_CLASSES)
            else:
                train = common.load_split(
                    sampling, c.split, size, preprocess, training=True, seed=seed, sampled=True, **digits
                )
            logging.info("%s, seed %d: %s", label, seed, train.describe())
            try:
                if method is None:
                    model, record = auto_select.select_and_evaluate(
                        c, source_model, train, validation, eval_data, ten_crop, seed, taps
                    )
                else:
                    model, record = fine_tuning.fine_tune_and_evaluate(
                        method,
                        source_model,
                        train,
                        eval_data,
                        ten_crop_data=ten_crop,
                        log_dir=os.path.join(c.output_dir, "tensorboard", label, f"seed{seed}"),
                        seed=seed,
                        taps=taps,
                        epochs=c.epochs,
                        lr=c.lr,
                        momentum=c.momentum,
                        dropout=c.dropout,
                        verbose=c.verbose,
                        distribute=c.distribute,
                        validation_freq=c.validation_freq,
                        backup_dir=c.backup(label, f"seed{seed}"),
                        jit_compile=common.jit_compile(c),
                        overwrite=c.overwrite,
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
            reporting.write(c.output_dir, report)
        top1 = results[label]["summary"].get("top1", {}).get("mean")
        if "diverged" not in results[label] and (
            best is None or top1 > results[best[0]]["summary"]["top1"]["mean"]
        ):
            best = (label, first_model)

    finished = {label: result for label, result in results.items() if "diverged" not in result}
    table = reporting.markdown_table(results) + auto_select.markdown(results)
    if best is None:
        reporting.write(c.output_dir, report, table)
        raise FloatingPointError(
            f"Every method diverged; results in {os.path.join(c.output_dir, 'results.json')}. "
            + " ".join(f"{label}: {result['diverged']['error']}" for label, result in results.items())
        )
    plots = reporting.plot(c.output_dir, finished)
    card = {
        "kind": "classifier",
        "method": best[0],
        "preprocess": preprocess,
        "image_size": list(size),
        "class_names": eval_data.class_names,
        "dataset": c.dataset,
    }
    model_path = os.path.join(c.output_dir, "best_model.keras")
    models.save_model(best[1].inference_model(name="classifier"), model_path, card)
    report["best"] = {"method": best[0], "model": model_path}
    if c.export:
        report["best"]["saved_model"] = export_serving(
            best[1],
            c.export_dir or os.path.join(c.output_dir, "saved_models"),
            name=c.export_name or common.export_name(c.dataset) or "model",
            preprocess=preprocess,
        )
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    report["complete"] = True
    reporting.write(c.output_dir, report, table)
    report["table"], report["plots"] = table, plots
    return report


def main(argv):
    del argv
    config = FinetuneConfig.from_flags(FLAGS)
    report = run(config)
    print()
    print(report["table"])
    print()
    best = report["best"]
    print(
        f"Best: {best['method']} -> {best['model']}"
        + (f", SavedModel {best['saved_model']}" if "saved_model" in best else "")
    )
    print(f"Results: {os.path.join(config.output_dir, 'results.json')}, results.md, plots {report['plots']}")
    print(f"Wall time: {report['wall_seconds']} s on the {report['backend']} backend")


if __name__ == "__main__":
    common.run(main, FLAGS)
