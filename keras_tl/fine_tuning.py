"""`keras_tl.fine_tune`: the benchmark's fine-tuning recipe for Python users, in one call."""

import contextlib

import keras

from keras_tl import callbacks as callbacks_module
from keras_tl import methods as methods_module
from keras_tl.api_export import keras_tl_export
from keras_tl.utils import fine_tuning_checks, locks, run_identity
from keras_tl.utils.validation import check_number


def cosine_sgd(lr, momentum, total_steps):
    """SGD with momentum and a cosine decay of the learning rate to 0 over `total_steps`."""
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps))
    return keras.optimizers.SGD(schedule, momentum=momentum)


def classification_loss(train):
    """Cross-entropy on the logits: sparse for int labels, categorical for MixUp/CutMix's label mixtures."""
    if getattr(train, "mixed", False):
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def training_callbacks(train, backup_dir=None, identity=None, overwrite=False, keep_backup=False):
    """What every run's `fit` gets: NaN stop, resume-safe shuffling, and (with `backup_dir`) a backup.

    `NaNGuard` raises within the epoch, so the backup never holds NaN weights: a rerun
    resumes from the last good epoch. `AtomicBackupAndRestore`, not Keras' in-place one: a
    kill while the checkpoint is written must not leave a file no rerun can open. `identity`
    and `overwrite`: see `AtomicBackupAndRestore`. With `keep_backup`, the checkpoint outlives
    `fit` (a later call continues the run).
    """
    callbacks = [callbacks_module.NaNGuard(), train.epoch_callback()]
    if backup_dir:
        callbacks.append(
            callbacks_module.AtomicBackupAndRestore(
                backup_dir, identity=identity, overwrite=overwrite, delete_checkpoint=not keep_backup
            )
        )
    return callbacks


@keras_tl_export("keras_tl.fine_tune")
def fine_tune(
    method,
    source,
    train,
    eval_data=None,
    epochs=10,
    lr=0.01,
    momentum=0.9,
    taps=None,
    dropout=0.0,
    seed=0,
    cache_dir=None,
    backup_dir=None,
    distribute="none",
    validation_freq=1,
    callbacks=(),
    verbose="auto",
    validation_data=None,
    keep_backup=False,
    stop_at_epoch=None,
    num_classes=None,
    batch_size=32,
    jit_compile="auto",
    overwrite=False,
):
    """Fine-tunes `source` on `train` with `method`, as `apps.finetune` and the benchmark do.

    The recipe: seed everything with `seed` (again after the data-dependent preparation, so
    a rerun that reads DELTA's cached channel weights starts from the same model); build
    `method`'s `TransferModel` inside `keras_tl.distribute.scope(distribute)`; SGD with
    momentum and a cosine decay over the run; cross-entropy on the logits (sparse, or
    categorical for MixUp/CutMix label mixtures: `classification_loss`); `NaNGuard`,
    the split's resume-safe per-epoch shuffling, and with `backup_dir` an
    `AtomicBackupAndRestore` (a killed run resumes from its last finished epoch); the
    method's own optimizer wrapper (FTP, SPD) and callbacks (stage switches, TPGM), and after
    training its `finish` (WiSE-FT's interpolation).

    A run owns its `backup_dir` (`keras_tl.utils.locks.folder_lock`: a second process is
    refused) and its checkpoint records the run's identity (`keras_tl.utils.run_identity`): a
    rerun with the same settings resumes, one with other settings is refused, naming them,
    unless `overwrite`. Bad arguments (`lr < 0`, a split loaded with `training=False`,
    `eval_data` with other classes) are refused before anything runs.

    Args:
        method: a `keras_tl.methods.Method` or a name for `keras_tl.methods.get`.
        source: the source `keras.Model` (or a backbone name).
        train: the training split from `keras_tl.data.load(..., training=True)`, or plain data
            as `fit` takes it: a `tf.data.Dataset` of `(images, labels)` or `(x, y)` arrays
            (`keras_tl.data.as_split`: int or one-hot labels, arrays shuffled per epoch by `seed`).
        eval_data: a split (or plain data) evaluated every `validation_freq` epochs (0: not during `fit`).
        epochs, lr, momentum: the schedule.
        taps: tapped layers (default: the backbone's default taps, see `Method.build`).
        dropout: dropout before the new head.
        seed: the run's seed.
        cache_dir: where data-dependent preparation is cached (DELTA's channel weights).
        backup_dir: `AtomicBackupAndRestore` folder; None: no backup.
        distribute: a `keras_tl.distribute.scope` name.
        callbacks: more `keras.callbacks.Callback`s.
        verbose: `fit`'s verbosity.
        validation_data: held-out data, never the test split, for the methods that choose or
            learn on it (LP-FT's probe, WiSE-FT's α, TPGM's radii); None for the others.
        keep_backup: keep `backup_dir`'s checkpoint when `fit` ends (default: deleted).
        stop_at_epoch: train only the first `stop_at_epoch` epochs of the `epochs`-long run
            (the cosine schedule and the method's stages stay those of `epochs`); None: all.
            With `backup_dir` and `keep_backup`, a later call with a larger value continues
            the same run where this one stopped (`keras_tl.select`'s rungs).
        num_classes: for plain data: the number of classes (None: the largest label + 1).
        batch_size: for plain data: the batch size of arrays and unbatched datasets.
        jit_compile: `compile`'s `jit_compile` (`"auto"`, True: XLA, False).
        overwrite: start over when `backup_dir` holds another run's checkpoint, instead of
            refusing (a checkpoint of this very run still resumes).

    Returns:
        `(model, history)`: the trained `TransferModel` and `fit`'s `History`.

    Example:
    >>> train = keras_tl.data.load("folder:../shared/data/dtd10", "train", image_size=32,
    ...                            preprocess="cifar_resnet20", per_class=40, seed=0)
    >>> model, history = keras_tl.fine_tune("delta", source, train, epochs=30, lr=0.01)
    """
    from keras_tl import data as data_module  # tf.data: imported on first use

    train = data_module.as_split(train, num_classes, batch_size, seed=seed, name="train")
    if eval_data is not None:
        eval_data = data_module.as_split(eval_data, train.num_classes, batch_size, training=False, name="eval_data")
    method = methods_module.get(method)
    taps = methods_module.resolve_taps(source, taps)
    if stop_at_epoch is not None:
        stop_at_epoch = check_number("stop_at_epoch", stop_at_epoch, minimum=1, integer=True, maximum=epochs)
    fine_tuning_checks.check_arguments(
        train, eval_data, epochs=epochs, lr=lr, momentum=momentum, dropout=dropout, validation_freq=validation_freq
    )
    identity = None
    if backup_dir:
        settings = dict(epochs=epochs, lr=lr, momentum=momentum, taps=taps, dropout=dropout, seed=seed)
        identity = run_identity.fine_tune_identity(method, source, train, **settings)
    with locks.folder_lock(backup_dir) if backup_dir else contextlib.nullcontext():
        if backup_dir:  # another run's checkpoint is refused now, not after the preparation below
            callbacks_module.AtomicBackupAndRestore(backup_dir, identity=identity, overwrite=overwrite).check(epochs)
        return _fine_tune(
            method, source, train, eval_data, backup=(backup_dir, identity, overwrite, keep_backup), epochs=epochs,
            lr=lr, momentum=momentum, taps=taps, dropout=dropout, seed=seed, cache_dir=cache_dir,
            distribute=distribute, validation_freq=validation_freq, callbacks=callbacks, verbose=verbose,
            validation_data=validation_data, stop_at_epoch=stop_at_epoch, jit_compile=jit_compile,
        )


def _fine_tune(
    method, source, train, eval_data, *, backup, epochs, lr, momentum, taps, dropout, seed, cache_dir, distribute,
    validation_freq, callbacks, verbose, validation_data, stop_at_epoch, jit_compile,
):
    """`fine_tune` once its arguments are checked and its `backup_dir` is held; `backup`: the
    backup arguments of `training_callbacks`."""
    keras.utils.set_random_seed(seed)
    setup = method.setup(source, train, taps, cache_dir, validation=validation_data)
    # Measuring the data (DELTA's head, skipped when its cache exists) draws random numbers:
    # re-seed so the model starts the same on a first run and on a rerun.
    keras.utils.set_random_seed(seed)
    steps = steps_per_epoch(train)
    from keras_tl import distribute as distribute_module  # imports tf.distribute: on first use only

    with distribute_module.scope(distribute):
        model = method.build(source, train, taps=taps, dropout=dropout, setup=setup)
        model.compile(
            optimizer=method.optimizer(cosine_sgd(lr, momentum, epochs * steps)),
            loss=classification_loss(train),
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
        history = model.fit(
            train.dataset,
            epochs=stop_at_epoch or epochs,
            validation_data=eval_data.dataset if eval_data is not None and validation_freq else None,
            validation_freq=validation_freq or 1,
            callbacks=(training_callbacks(train, *backup) + method.callbacks(epochs, steps, setup) + list(callbacks)),
            shuffle=False,
            verbose=verbose,
        )
    model, report = method.finish(model, setup)
    history.history.update({key: [value] for key, value in report.items()})
    return model, history


def steps_per_epoch(train):
    """Batches per epoch of a split (at least 1): the unit of the cosine schedule's length.

    A training split from `keras_tl.data.load` yields `num_examples // batch_size` full batches
    (it drops the short last batch unless `drop_remainder=False`); a plain dataset
    (`keras_tl.data.as_split`) the batches it was counted to yield; an object that only has
    `num_examples` and `batch_size` (a split of your own) their full batches.
    """
    steps = getattr(train, "steps_per_epoch", None)
    return steps if steps is not None else max(1, train.num_examples // train.batch_size)


def fine_tune_and_evaluate(
    method, source, train, eval_data, ten_crop_data=None, log_dir=None, seed=0, callbacks=(), **kwargs
):
    """One measured `fine_tune` run, evaluated on `eval_data`: what `apps.finetune` records per seed.

    Args:
        method, source, train, eval_data, seed, callbacks: as for `fine_tune`.
        ten_crop_data: a split loaded with `crops="ten"`, also evaluated; None: not.
        log_dir: the run's folder: TensorBoard logs (when `tensorboard` is installed) and the
            cache of the data-dependent preparation (`fine_tune`'s `cache_dir`).
        **kwargs: more `fine_tune` arguments (`epochs`, `lr`, `taps`, `backup_dir`, ...).

    Returns:
        `(model, record)`: the trained `TransferModel` and a JSON-safe dict with the seed, the
        accuracies on `eval_data` (`top1`, `mean_per_class`, and `*_10crop`), the `fit` history,
        the wall time (`seconds`), the median seconds per training step (`step_seconds`, see
        `keras_tl.callbacks.StepTimer`) and, for DI2, the k of its diffusion sequences (`di2_k`).

    Example:
    >>> model, record = keras_tl.fine_tuning.fine_tune_and_evaluate("l2_sp", source, train, test, epochs=30)
    >>> record["top1"], record["step_seconds"]
    """
    import importlib.util
    import time
    import warnings

    from keras_tl import data, regularizers

    if eval_data is None:
        raise ValueError("Expected eval_data, a split from keras_tl.data.load. Received: eval_data=None")
    train = data.as_split(train, kwargs.get("num_classes"), kwargs.get("batch_size", 32), seed=seed, name="train")
    eval_data = data.as_split(eval_data, train.num_classes, train.batch_size, training=False, name="eval_data")
    if ten_crop_data is not None:
        fine_tuning_checks.check_evaluation_split(train, ten_crop_data, "ten_crop_data")
    timer = callbacks_module.StepTimer(steps_per_epoch(train))
    extra = [timer]
    if log_dir and importlib.util.find_spec("tensorboard") is None:
        warnings.warn("No TensorBoard logs: the tensorboard package is not installed (pip install 'keras_tl[apps]').", stacklevel=2)
    elif log_dir:
        extra.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False))
    start = time.perf_counter()
    model, history = fine_tune(
        method, source, train, eval_data, seed=seed, cache_dir=log_dir, callbacks=extra + list(callbacks), **kwargs
    )
    record = {"seed": seed, "seconds": round(time.perf_counter() - start, 2), "step_seconds": timer.step_seconds()}
    for regularizer in model.regularizers:
        if isinstance(regularizer, regularizers.DiscrepantDiffusion):
            record["di2_k"] = len(regularizer.sequences[0])
    record.update(data.evaluate(model, eval_data.dataset, eval_data.num_classes))
    if ten_crop_data is not None:
        ten = data.evaluate(model, ten_crop_data.dataset, ten_crop_data.num_classes)
        record.update({f"{key}_10crop": value for key, value in ten.items()})
    record["history"] = {key: [float(v) for v in values] for key, values in history.history.items()}
    return model, record
