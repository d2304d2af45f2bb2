"""`keras_tl.pretrain`: upstream training from scratch, the source network fine-tuning starts from."""

import math

import keras
import numpy as np

from keras_tl import backbones, fine_tuning
from keras_tl.api_export import keras_tl_export
from keras_tl.models import cards
from keras_tl.utils.validation import check_number


def prior_guided_diffusion(train, wnids=None, tau=100.0, num_neighbours=5, wordnet_path=None):
    """DSD's PGD loss (Eq. 3) with the WordNet prior over the upstream classes' ImageNet ids `wnids`.

    N(c) is the `num_neighbours` classes closest to c by Wu-Palmer similarity. DSD gives no
    size for N(c); 5 of Tiny-ImageNet's 200 classes is about one WordNet sibling group (the
    dog breeds, the insects), so the prior relaxes the look-alike classes and not whole
    super-categories.
    """
    from keras_tl import losses, semantic

    if not wnids or len(wnids) != train.num_classes:
        raise ValueError(
            f"Expected one WordNet id per upstream class ({train.num_classes}) for the PGD loss, "
            f"e.g. from a classes.tsv with a 'wnid' column. Received: {len(wnids or [])} ids"
        )
    path = wordnet_path or semantic.wordnet.DEFAULT_PATH
    similarity = semantic.wordnet_similarity(list(wnids), path=path)
    neighbours = semantic.nearest_neighbours(similarity, num_neighbours)
    return losses.PriorGuidedDiffusion(tau=tau, neighbours=neighbours)


# Upstream losses by name: factory(train split, **loss_options) -> a Keras loss on (labels, logits).
LOSSES = {
    "cross_entropy": lambda train, **options: fine_tuning.classification_loss(train),
    "pgd": prior_guided_diffusion,
}


@keras_tl_export("keras_tl.pretrain")
def pretrain(
    train,
    backbone,
    epochs=15,
    lr=0.1,
    momentum=0.9,
    weight_decay=5e-4,
    loss="cross_entropy",
    loss_options=None,
    preprocess=None,
    bn_momentum=None,
    head_bias=None,
    output="source.keras",
    eval_data=None,
    backup_dir=None,
    seed=0,
    distribute="none",
    callbacks=(),
    verbose=2,
    jit_compile="auto",
):
    """Trains `backbone` from scratch on `train` and saves it, with its card, to `output`.

    The recipe: SGD with momentum, a cosine decay over the run and decoupled weight decay on
    the kernels (a standard choice for ResNets from scratch); `NaNGuard`, the split's
    resume-safe shuffling and, with `backup_dir`, `AtomicBackupAndRestore` (an interrupted run
    resumes from its last finished epoch). The model is built, compiled and trained inside
    `keras_tl.distribute.scope(distribute)`. The source keeps its classifier (`include_top`),
    so fine-tuning can use the upstream head (two-head methods such as LwF, Co-Tuning).

    Args:
        train: the training split from `keras_tl.data.load(..., training=True)`; its image size
            and classes size the network.
        backbone: a name from `keras_tl.backbones.NAMES`.
        epochs, lr, momentum, weight_decay: the schedule.
        loss: a name from `keras_tl.pretraining.LOSSES` (`"cross_entropy"`, `"pgd"`), built with
            `loss_options` (for `"pgd"`: `wnids`, `tau`, `num_neighbours`, `wordnet_path`).
        preprocess: the preprocessing `train` was loaded with, for the card; None: the backbone's.
        bn_momentum: replaces the BatchNormalization momentum. Keras' 0.99 leaves the moving
            statistics near their initial values after a few hundred steps; short runs need
            e.g. 0.9. None: the backbone's own.
        head_bias: the classifier's initial bias. `"prior"`: −log(N−1) for N classes, so each
            sigmoid starts at 1/N (a per-class sigmoid loss such as PGD then starts near the
            softmax's log N instead of N·log 2, the usual remedy for one-vs-all training from
            scratch, cf. Lin et al. 2017's prior initialisation); a float: that value; None:
            the backbone's zeros.
        output: the `.keras` path; the card goes beside it (`keras_tl.models.load_card`), with
            the per-epoch `history` (`val_*` with `eval_data`).
        eval_data: a split evaluated after each epoch, or None.
        backup_dir: `AtomicBackupAndRestore` folder; None: no backup.
        seed: the run's seed.
        distribute: a `keras_tl.distribute.scope` name.
        callbacks: more `keras.callbacks.Callback`s.
        verbose: `fit`'s verbosity.
        jit_compile: `compile`'s `jit_compile` (`"auto"`, True: XLA, False).

    Returns:
        `(model, history)`: the trained model and `fit`'s history dict (`{"loss": [...], ...}`).

    Example:
    >>> train = keras_tl.data.load("digits", "train", image_size=16, classes=[0, 1, 2, 3, 4],
    ...                            preprocess="cifar_resnet20", training=True)
    >>> model, history = keras_tl.pretrain(train, "cifar_resnet20", epochs=10, bn_momentum=0.9,
    ...                                    output="runs/source.keras")
    """
    if backbone not in backbones.NAMES:
        raise ValueError(f"Expected backbone to be one of {list(backbones.NAMES)}. Received: backbone={backbone!r}")
    if loss not in LOSSES:
        raise ValueError(f"Expected loss to be one of {sorted(LOSSES)}. Received: loss={loss!r}")
    if not str(output).endswith(".keras"):
        raise ValueError(f"Expected output to end in '.keras'. Received: output={output!r}")
    check_number("epochs", epochs, minimum=1, integer=True)
    for name, value in {"lr": lr, "momentum": momentum, "weight_decay": weight_decay}.items():
        check_number(name, value, minimum=0)
    if bn_momentum is not None and not 0 <= check_number("bn_momentum", bn_momentum, minimum=0) < 1:
        raise ValueError(f"Expected bn_momentum in [0, 1) or None. Received: bn_momentum={bn_momentum!r}")
    if head_bias is not None and head_bias != "prior":
        try:
            check_number("head_bias", head_bias)
        except ValueError:
            raise ValueError(
                f"Expected head_bias to be 'prior', a number or None. Received: head_bias={head_bias!r}"
            ) from None
    from keras_tl import distribute as distribute_module  # imports tf.distribute: on first use only

    keras.utils.set_random_seed(seed)
    with distribute_module.scope(distribute):
        model = backbones.build(
            backbone,
            weights=None,
            input_shape=tuple(train.image_size) + (3,),
            include_top=True,
            classes=train.num_classes,
        )
        if bn_momentum is not None:
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.momentum = bn_momentum
        if head_bias is not None:
            _set_head_bias(model, head_bias, train.num_classes)
        optimizer = fine_tuning.cosine_sgd(lr, momentum, epochs * fine_tuning.steps_per_epoch(train))
        optimizer.weight_decay = weight_decay
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(
            optimizer=optimizer,
            loss=LOSSES[loss](train, **(loss_options or {})),
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
        history = model.fit(
            train.dataset,
            epochs=epochs,
            validation_data=None if eval_data is None else eval_data.dataset,
            callbacks=fine_tuning.training_callbacks(train, backup_dir) + list(callbacks),
            shuffle=False,
            verbose=verbose,
        )
    card = {
        "kind": "source",
        "backbone": backbone,
        "preprocess": preprocess or backbone,
        "image_size": list(train.image_size),
        "class_names": train.class_names,
        "loss": loss,
        "loss_options": {k: v for k, v in (loss_options or {}).items() if k != "wnids"},
        # The whole run's curve: `AtomicBackupAndRestore` carries a resumed run's earlier epochs.
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
    }
    if head_bias is not None:
        card["head_bias"] = head_bias
    cards.save_model(model, output, card)
    return model, history.history


def _set_head_bias(model, head_bias, num_classes):
    """Sets the bias of the model's last `Dense` layer (the classifier)."""
    heads = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense) and layer.use_bias]
    if not heads:
        raise ValueError(f"Expected a Dense classifier with a bias for head_bias. Received: model {model.name!r}")
    value = -math.log(max(1, num_classes - 1)) if head_bias == "prior" else float(head_bias)
    heads[-1].bias.assign(np.full(heads[-1].bias.shape, value, "float32"))
