"""The training loops the apps run: upstream pre-training and one fine-tuning run."""

import importlib.util
import time

import keras
import numpy as np
from absl import logging

import keras_tl
import keras_tl.data
import keras_tl.distribute
from apps import common
from keras_tl import backbones, fine_tuning

# ============================================================================ pre-training


def prior_guided_diffusion(train, wnids=None, tau=100.0, num_neighbours=5, wordnet_path=None):
    """DSD's PGD loss (Eq. 3) with the WordNet prior over the upstream classes' ImageNet ids `wnids`.

    N(c) is the `num_neighbours` classes closest to c by Wu-Palmer similarity. DSD gives no
    size for N(c); 5 of Tiny-ImageNet's 200 classes is about one WordNet sibling group (the
    dog breeds, the insects), so the prior relaxes the look-alike classes and not whole
    super-categories.
    """
    if not wnids or len(wnids) != train.num_classes:
        raise ValueError(
            f"Expected one WordNet id per upstream class ({train.num_classes}) for the PGD loss, "
            f"e.g. from a classes.tsv with a 'wnid' column. Received: {len(wnids or [])} ids"
        )
    path = wordnet_path or keras_tl.semantic.wordnet.DEFAULT_PATH
    similarity = keras_tl.semantic.wordnet_similarity(list(wnids), path=path)
    neighbours = keras_tl.semantic.nearest_neighbours(similarity, num_neighbours)
    return keras_tl.losses.PriorGuidedDiffusion(tau=tau, neighbours=neighbours)


# Upstream losses by name: factory(train split, **loss_options) -> a Keras loss on (labels, logits).
PRETRAIN_LOSSES = {
    "cross_entropy": lambda train, **options: common.cross_entropy(),
    "pgd": prior_guided_diffusion,
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
    loss_options=None,
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

    `loss` names a `PRETRAIN_LOSSES` entry, built with `loss_options` (for `"pgd"`: `wnids`,
    `tau`, `num_neighbours`). The saved source keeps its classifier (`include_top`), so fine-tuning can use the upstream
    head (two-head methods). `bn_momentum` replaces the BatchNormalization momentum (Keras'
    default 0.99 leaves the moving statistics near their initial values after a few hundred
    steps; short runs need e.g. 0.9). With `backup_dir`, `keras_tl.callbacks.AtomicBackupAndRestore` saves each
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
        optimizer = fine_tuning.cosine_sgd(lr, momentum, epochs * fine_tuning.steps_per_epoch(train))
        # Decoupled decay on kernels only: a standard choice for training ResNets from scratch.
        optimizer.weight_decay = weight_decay
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(
            optimizer=optimizer,
            loss=PRETRAIN_LOSSES[loss](train, **(loss_options or {})),
            metrics=["accuracy"],
        )
        history = model.fit(
            train.dataset,
            epochs=epochs,
            validation_data=eval_data,
            callbacks=fine_tuning.training_callbacks(train, backup_dir) + list(callbacks),
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
            "loss_options": {k: v for k, v in (loss_options or {}).items() if k != "wnids"},
        },
    )
    return model, history.history


# ============================================================================ fine-tuning


def make_source(source, source_weights, image_size, unsafe_deserialization=False, seed=0):
    """`(source model or name, taps, preprocess, image size)` from the `--source` flags.

    A backbone name without weights is initialised from `seed`, so one command gives one result.
    """
    if source in backbones.NAMES:
        size = tuple(image_size) if image_size else backbones.default_input_shape(source)[:2]
        weights = source_weights or None
        keras.utils.set_random_seed(seed)
        strict = bool(weights) and weights.endswith(".weights.h5")
        model = backbones.build(source, weights=None if strict else weights, input_shape=size + (3,))
        if strict:  # a mismatched file fails naming each variable (see `keras_tl.models.load_weights`)
            keras_tl.models.load_weights(model, weights)
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
    validation_freq=1,
):
    """One run of `keras_tl.fine_tune` with `method` (see `keras_tl.methods`), measured and evaluated.

    `hparams` holds the method's keys only (see `keras_tl.methods.select_hparams`); the run's
    log folder caches the data-dependent preparation.

    Returns:
        `(model, record)`: the trained `TransferModel` and a JSON-safe dict with the
        accuracies on `eval_data` (center crop, and 10-crop when given), the `fit` history,
        the wall time, the median seconds per training step (`step_seconds`, see
        `keras_tl.callbacks.StepTimer`) and, for DI2, the k of its granularity diffusion sequences (`di2_k`).
    """
    timer = keras_tl.callbacks.StepTimer(fine_tuning.steps_per_epoch(train))
    extra = [timer]
    if log_dir and tensorboard_available():
        extra.append(keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False))
    start = time.perf_counter()
    model, history = keras_tl.fine_tune(
        keras_tl.methods.get(method, dtnh=dtnh, **keras_tl.methods.select_hparams(method, hparams or {})),
        source,
        train,
        eval_data=eval_data,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        taps=taps,
        dropout=dropout,
        seed=seed,
        cache_dir=log_dir,
        backup_dir=backup_dir,
        distribute=distribute,
        validation_freq=validation_freq,
        callbacks=extra,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    record = {"seed": seed, "seconds": round(seconds, 2), "step_seconds": timer.step_seconds()}
    for regularizer in model.regularizers:
        if isinstance(regularizer, keras_tl.regularizers.DiscrepantDiffusion):
            record["di2_k"] = len(regularizer.sequences[0])
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
