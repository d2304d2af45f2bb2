"""The training loops the apps run: upstream pre-training and one fine-tuning run."""

import importlib.util
import time

import keras
import numpy as np
from absl import logging

import keras_tl
import keras_tl.data
import keras_tl.distribute
from apps import common, methods
from keras_tl import backbones

# ============================================================================ pre-training

# Upstream losses by name: factory(num_classes, class_names) -> a Keras loss on (labels, logits).
# The prior-guided diffusion loss (PGD) registers here once it lands.
PRETRAIN_LOSSES = {
    "cross_entropy": lambda num_classes, class_names: common.cross_entropy(),
}


def pretrain(
    train,
    backbone,
    image_size,
    batch_size,
    epochs,
    lr,
    momentum=0.9,
    weight_decay=5e-4,
    loss="cross_entropy",
    preprocess=None,
    bn_momentum=None,
    output="source.keras",
    callbacks=(),
    backup_dir=None,
    eval_data=None,
    seed=0,
    verbose=2,
    distribute="none",
):
    """Trains `backbone` from scratch on `train` (a `keras_tl.data.Split` of `batch_size`) and saves it to `output`.

    The saved source keeps its classifier (`include_top`), so fine-tuning can use the upstream
    head (two-head methods). `bn_momentum` replaces the BatchNormalization momentum (Keras'
    default 0.99 leaves the moving statistics near their initial values after a few hundred
    steps; short runs need e.g. 0.9). With `backup_dir`, `keras.callbacks.BackupAndRestore` saves each
    epoch there and an interrupted run resumes from its last epoch. The model is built,
    compiled and trained inside `keras_tl.distribute.scope(distribute)`.

    Returns:
        `(model, history dict)`.
    """
    if loss not in PRETRAIN_LOSSES:
        raise ValueError(f"Expected loss to be one of {sorted(PRETRAIN_LOSSES)}. Received: loss={loss!r}")
    keras.utils.set_random_seed(seed)
    with keras_tl.distribute.scope(distribute):
        model = backbones.build(
            backbone,
            weights=None,
            input_shape=tuple(image_size) + (3,),
            include_top=True,
            classes=train.num_classes,
        )
        if bn_momentum is not None:
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = bn_momentum
        optimizer = common.sgd(lr, momentum, epochs, common.steps_per_epoch(train, batch_size))
        # Decoupled decay on kernels only: a standard choice for training ResNets from scratch.
        optimizer.weight_decay = weight_decay
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(
            optimizer=optimizer,
            loss=PRETRAIN_LOSSES[loss](train.num_classes, train.class_names),
            metrics=["accuracy"],
        )
        history = model.fit(
            train.dataset,
            epochs=epochs,
            validation_data=eval_data,
            callbacks=common.training_callbacks(train, backup_dir) + list(callbacks),
            shuffle=False,
            verbose=verbose,
        )
    common.save_model(
        model,
        output,
        {
            "kind": "source",
            "backbone": backbone,
            "preprocess": preprocess or backbone,
            "image_size": list(image_size),
            "class_names": train.class_names,
            "loss": loss,
        },
    )
    return model, history.history


# ============================================================================ fine-tuning


def make_source(source, source_weights, image_size, unsafe_deserialization=False):
    """`(source model or name, taps, preprocess, image size)` from the `--source` flags."""
    if source in backbones.NAMES:
        size = tuple(image_size) if image_size else backbones.default_input_shape(source)[:2]
        weights = source_weights or None
        model = backbones.build(source, weights=weights, input_shape=size + (3,))
        return model, backbones.default_taps(source), source, size
    if not source.endswith(".keras"):
        raise ValueError(
            f"Expected --source to be a backbone name from {list(backbones.NAMES)} or a saved "
            f"model file ending in '.keras'. Received: {source!r}"
        )
    model = common.load_keras_model(source, unsafe_deserialization)
    card = common.load_card(source)
    name = card.get("backbone") or model.name
    taps = backbones.default_taps(name) if name in backbones.NAMES else []
    preprocess = common.resolve_preprocess("", card, name)
    return model, taps, preprocess, common.input_size(model)


def finetune(
    source,
    taps,
    train,
    eval_data,
    method,
    batch_size,
    dtnh=False,
    hparams=None,
    epochs=10,
    lr=0.01,
    momentum=0.9,
    dropout=0.0,
    seed=0,
    log_dir=None,
    ten_crop_data=None,
    verbose=2,
    distribute="none",
    backup_dir=None,
):
    """One fine-tuning run of `method` (see `apps.methods`) from `source` on `train`.

    Built, compiled and trained inside `keras_tl.distribute.scope(distribute)`; with
    `backup_dir`, `keras.callbacks.BackupAndRestore` saves each epoch there and a rerun
    resumes from the last finished epoch.

    Returns:
        `(model, record)`: the trained `TransferModel` and a JSON-safe dict with the
        accuracies on `eval_data` (center crop, and 10-crop when given), the `fit` history
        and the wall time.
    """
    keras.utils.set_random_seed(seed)
    setup = methods.build(method, hparams or {}, methods.Context(source, taps, train, log_dir))
    with keras_tl.distribute.scope(distribute):
        model = keras_tl.TransferModel(
            source,
            num_classes=train.num_classes,
            taps=taps,
            regularizers=setup.regularizers,
            gradient_rule=keras_tl.gradients.DTNH() if dtnh else None,
            freeze_backbone=setup.freeze_backbone,
            source_head=setup.source_head,
            keep_source=setup.keep_source,
            dropout=dropout,
        )
        steps = common.steps_per_epoch(train, batch_size)
        model.compile(
            optimizer=common.sgd(lr, momentum, epochs, steps),
            loss=common.cross_entropy(),
            metrics=["accuracy"],
        )
        callbacks = common.training_callbacks(train, backup_dir) + list(setup.callbacks(epochs, steps))
        if log_dir and tensorboard_available():
            callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False))
        start = time.perf_counter()
        history = model.fit(
            train.dataset,
            epochs=epochs,
            validation_data=eval_data.dataset,
            callbacks=callbacks,
            shuffle=False,
            verbose=verbose,
        )
        seconds = time.perf_counter() - start
    record = {"seed": seed, "seconds": round(seconds, 2)}
    record.update(keras_tl.data.evaluate(model, eval_data.dataset, eval_data.num_classes))
    if ten_crop_data is not None:
        ten = keras_tl.data.evaluate(model, ten_crop_data.dataset, ten_crop_data.num_classes)
        record.update({f"{key}_10crop": value for key, value in ten.items()})
    record["history"] = {key: [float(v) for v in values] for key, values in history.history.items()}
    return model, record


def tensorboard_available():
    """Keras' TensorBoard callback needs the `tensorboard` package (the `apps` extra); without it, no logs."""
    if importlib.util.find_spec("tensorboard") is not None:
        return True
    logging.warning(
        "No TensorBoard logs: the tensorboard package is not installed (pip install 'keras_tl[apps]')."
    )
    return False


def summary(values):
    """`{"mean", "std"}` of per-seed values (sample std, 0 for one run)."""
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
