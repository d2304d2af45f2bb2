"""Batched channel ablation: the loss increase when each channel of a tapped map is zeroed.

DELTA's Alg. 1 zeroes one filter at a time and re-runs the whole network: N+1 forward
passes per batch for N channels. Here the network is split at each tap into a prefix (run
once per batch, for every tap together) and a suffix from the tap to the pooled features;
the suffix runs on the batch repeated `chunk_size` times, each copy with one channel
masked, so a chunk of channels costs one partial forward pass. Where the tap feeds global
average pooling and the linear head directly, the ablated logits have a closed form and
no pass is needed at all: zeroing channel j subtracts mean_p FM[p, j] · W_head[j, :] from
the logits.

Zeroing output channel j of the tap is zeroing filter j (its kernel slice and bias) of a
convolution tap, Alg. 1's "setting all elements of the j-th filter to 0". On a token map
`[B, T, C]` (a ViT's encoder output) channel j is zeroed in every token, the class token
included: the transformer's counterpart of a filter is a feature dimension shared by all
tokens (the paper knows only CNNs). A token map pooled by the mean over tokens has the
closed form too; one pooled by its class token re-runs the (one-layer) suffix.
"""

import dataclasses
import logging
import math
import time
import weakref

import keras
import numpy as np
from keras import ops

logger = logging.getLogger(__name__)


def per_example_cross_entropy(y, logits):
    """The default loss of Alg. 1: sparse categorical cross-entropy on logits, one value per example."""
    return keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)


@dataclasses.dataclass
class TapPlan:
    """How tap `name` is ablated: `"suffix"` (re-run `suffix`), `"closed_form"` or `"unused"`.

    `input_keys` name the prefix outputs the tap's ablation reads: the tap's map first, then
    the suffix's other inputs.
    """

    name: str
    channels: int
    mode: str
    input_keys: list
    suffix: keras.Model | None = None


def _flat(structure):
    return keras.tree.flatten(structure)


def _layer_tensors(layer, attribute):
    try:
        return _flat(getattr(layer, attribute))
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Expected every layer of the backbone to be called once (a plain functional graph). "
            f"Layer {layer.name!r} has no single {attribute}: {error}"
        ) from error


class AblationPlan:
    """The prefix model and one `TapPlan` per tap of a `TransferModel`'s target backbone.

    Built with the public functional API only: each layer's `input`/`output` tensors give
    the graph; the layers downstream of a tap form the suffix, whose other inputs (e.g. the
    shortcut of a residual block) are computed by the prefix.
    """

    def __init__(self, model, taps):
        backbone = model.target_backbone
        features = backbone.output["features"]
        layers = [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]
        inputs_of = {layer.name: _layer_tensors(layer, "input") for layer in layers}
        outputs_of = {layer.name: _layer_tensors(layer, "output") for layer in layers}

        prefix_outputs = {"features": features}
        key_of = {id(features): "features"}

        def key_for(tensor):
            if id(tensor) not in key_of:
                key_of[id(tensor)] = f"tensor_{len(key_of)}"
                prefix_outputs[key_of[id(tensor)]] = tensor
            return key_of[id(tensor)]

        self.taps = []
        for name in taps:
            backbone.get_layer(name)  # a clear error for an unknown tap
            (tap_output,) = outputs_of[name]
            downstream, produced = self._downstream(layers, inputs_of, outputs_of, name)
            frontier = {}  # id -> tensor; KerasTensors overload ==, so never compare them
            for layer in layers:
                if layer.name in downstream and layer.name != name:
                    frontier.update({id(t): t for t in inputs_of[layer.name] if id(t) not in produced})
            frontier = list(frontier.values())
            plan = TapPlan(name, int(tap_output.shape[-1]), "suffix", [key_for(tap_output)])
            if id(features) not in produced:
                plan.mode = "unused"
            elif self._feeds_pooling_directly(backbone, downstream, name, features):
                plan.mode = "closed_form"
            else:
                plan.input_keys += [key_for(t) for t in frontier]
                plan.suffix = keras.Model([tap_output, *frontier], features, name=f"{name}_suffix")
            self.taps.append(plan)
        inputs = backbone.inputs[0] if len(backbone.inputs) == 1 else backbone.inputs
        self.prefix = keras.Model(inputs, prefix_outputs, name="ablation_prefix")

    @staticmethod
    def _downstream(layers, inputs_of, outputs_of, tap):
        downstream = {tap}
        produced = {id(t) for t in outputs_of[tap]}
        changed = True
        while changed:  # layers are in topological order; the loop only guards odd orderings
            changed = False
            for layer in layers:
                if layer.name not in downstream and any(id(t) in produced for t in inputs_of[layer.name]):
                    downstream.add(layer.name)
                    produced |= {id(t) for t in outputs_of[layer.name]}
                    changed = True
        return downstream, produced

    @staticmethod
    def _feeds_pooling_directly(backbone, downstream, tap, features):
        others = [backbone.get_layer(name) for name in downstream if name != tap]
        if len(others) != 1:
            return False
        (pool,) = others
        return (
            isinstance(pool, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling1D))
            and pool.data_format == "channels_last"
            and not pool.keepdims
            and pool.output is features
        )


def channels_per_pass(channels, batch, chunk_size, example_bytes, max_pass_mb):
    """How many channels one suffix pass ablates (at least one).

    At most `chunk_size`, and few enough that the pass's inputs (`channels_per_pass × batch`
    ablated copies of `example_bytes` each: the tap's map plus the suffix's other inputs)
    fit in `max_pass_mb` megabytes (None: no bound).
    """
    count = min(chunk_size, channels)
    if max_pass_mb is not None:
        count = min(count, max(1, int(max_pass_mb * 2**20 // (batch * example_bytes))))
    return count


def _example_bytes(plan, outputs):
    """Bytes of one example of the suffix's inputs (the tap's map and the other inputs)."""
    return sum(np.asarray(outputs[key])[0].nbytes for key in plan.input_keys)


def _ablated_losses_suffix(plan, outputs, y, head, loss, count, progress=None):
    """`[B, C]` per-example losses with each channel zeroed, `ceil(C / count)` suffix passes of `count·B` copies."""
    tap_output = np.asarray(outputs[plan.input_keys[0]])
    others = [np.asarray(outputs[key]) for key in plan.input_keys[1:]]
    batch = tap_output.shape[0]
    # Every pass has the same shape (the last chunk is padded with unmasked copies whose
    # losses are dropped), so the compiled suffix is traced once per tap; memory is bounded
    # by `count·B` copies of the suffix's inputs, whatever the number of channels.
    repeated = [np.concatenate([t] * count, axis=0) for t in others]
    labels = ops.concatenate([y] * count, axis=0)
    losses, passes = [], 0
    for start in range(0, plan.channels, count):
        used = min(count, plan.channels - start)
        keep = np.ones((count, plan.channels), tap_output.dtype)
        keep[np.arange(used), start + np.arange(used)] = 0.0
        keep = keep.reshape((count,) + (1,) * (tap_output.ndim - 1) + (plan.channels,))
        masked = (tap_output[None] * keep).reshape((-1,) + tap_output.shape[1:])
        features = plan.suffix.predict_on_batch([masked, *repeated])
        chunk_losses = ops.reshape(loss(labels, head(features)), (count, batch))
        losses.append(ops.convert_to_numpy(ops.transpose(chunk_losses)[:, :used]))
        passes += 1
        if progress is not None:
            progress.add(1)
    return np.concatenate(losses, axis=1), passes


def _ablated_losses_closed_form(plan, outputs, y, head, loss):
    """`[B, C]` per-example losses with each channel zeroed, from the logits alone (GAP + linear head)."""
    tap_output = ops.cast(outputs[plan.input_keys[0]], "float32")
    pooled = ops.mean(tap_output, axis=tuple(range(1, len(tap_output.shape) - 1)))
    logits = head(outputs["features"])
    kernel = ops.cast(head.kernel, "float32")
    ablated = logits[:, None, :] - pooled[:, :, None] * kernel[None, :, :]
    classes = ablated.shape[-1]
    labels = ops.repeat(y, plan.channels, axis=0)
    losses = loss(labels, ops.reshape(ablated, (-1, classes)))
    return ops.reshape(losses, (-1, plan.channels))


# Plans (and the compiled suffix models in them) are reused by later calls on the same model.
_PLANS = weakref.WeakKeyDictionary()


def ablation_plan(model, taps):
    plans = _PLANS.setdefault(model, {})
    if tuple(taps) not in plans:
        plans[tuple(taps)] = AblationPlan(model, taps)
    return plans[tuple(taps)]


def channel_importance(
    model,
    batches,
    taps=None,
    chunk_size=32,
    loss=None,
    return_stats=False,
    max_pass_mb=512,
    verbose=0,
):
    """Mean loss increase per channel of each tap when that channel is zeroed (batched; Alg. 1, Eq. 9).

    W_j = 1/n Σ_i [L(z(x_i, ω*\\j), y_i) − L(z(x_i, ω*), y_i)] over the n examples of
    `batches`, with the model in inference mode (BatchNorm uses moving statistics).

    Cost: per batch, one prefix pass for all taps, then for each tap that is not closed-form
    ceil(C / k) suffix passes of k·B ablated copies, k = `channels_per_pass` (at most
    `chunk_size`, and k·B copies of the suffix's inputs within `max_pass_mb`). Memory is
    thus bounded whatever the batch size: at ResNet-50 224 one copy of the conv2 tap is
    56·56·256 floats (3.2 MB), so 512 MB is 160 copies, where `chunk_size × B` = 32 × 64
    copies would be 6.6 GB. Small maps (CIFAR) keep the full `chunk_size`.
    The cost (passes, examples, seconds, per tap) is logged at INFO level and returned
    with `return_stats=True`.

    Args:
        model: a `keras_tl.TransferModel` (usually the L2-FE one); its target backbone and
            new head are ablated as they are.
        batches: an iterable of `(x, y)` batches (numpy arrays or tensors).
        taps: tap layer names (default: `model.taps`).
        chunk_size: at most this many channels ablated per suffix pass.
        loss: `loss(y, logits) -> [batch]` per-example loss (default: sparse categorical
            cross-entropy on logits).
        return_stats: also return the cost `{"forward_passes", "prefix_passes",
            "suffix_passes", "examples", "seconds", "taps": {tap: {"mode", "passes",
            "seconds"}}}`.
        max_pass_mb: at most this many megabytes of suffix inputs (ablated copies) per
            pass (a positive number, or None for `chunk_size × B` copies): lower it if
            memory is short.
        verbose: 1 shows a `keras.utils.Progbar` over the suffix passes, 0 is silent.

    Returns:
        `{tap: [float] * channels}` (and the stats if asked).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"Expected chunk_size to be a positive int. Received: chunk_size={chunk_size!r}")
    if max_pass_mb is not None and (
        isinstance(max_pass_mb, bool) or not isinstance(max_pass_mb, (int, float)) or not max_pass_mb > 0
    ):
        raise ValueError(
            f"Expected max_pass_mb to be a positive number or None. Received: max_pass_mb={max_pass_mb!r}"
        )
    taps = list(model.taps if taps is None else taps)
    loss = loss or per_example_cross_entropy
    plan = ablation_plan(model, taps)
    totals = {tap.name: np.zeros(tap.channels, "float64") for tap in plan.taps}
    per_tap = {tap.name: {"mode": tap.mode, "passes": 0, "seconds": 0.0} for tap in plan.taps}
    examples = prefix_passes = suffix_passes = 0
    progress = None
    started = time.perf_counter()
    for x, y in batches:
        y = ops.convert_to_tensor(np.asarray(y))
        batch = int(ops.shape(y)[0])
        outputs = plan.prefix.predict_on_batch(np.asarray(x))
        prefix_passes += 1
        counts = {
            tap.name: channels_per_pass(
                tap.channels, batch, chunk_size, _example_bytes(tap, outputs), max_pass_mb
            )
            for tap in plan.taps
            if tap.mode == "suffix"
        }
        if verbose and progress is None:
            # The target is known after the first batch: its passes times the number of batches.
            per_batch = sum(
                math.ceil(tap.channels / counts[tap.name]) for tap in plan.taps if tap.name in counts
            )
            total = per_batch * len(batches) if hasattr(batches, "__len__") else None
            progress = keras.utils.Progbar(total, unit_name="suffix pass")
        baseline = ops.convert_to_numpy(loss(y, model.head(outputs["features"])))
        for tap in plan.taps:
            if tap.mode == "unused":
                continue
            tap_started = time.perf_counter()
            if tap.mode == "closed_form":
                ablated = ops.convert_to_numpy(_ablated_losses_closed_form(tap, outputs, y, model.head, loss))
            else:
                ablated, count = _ablated_losses_suffix(
                    tap, outputs, y, model.head, loss, counts[tap.name], progress
                )
                suffix_passes += count
                per_tap[tap.name]["passes"] += count
            totals[tap.name] += np.sum(ablated.astype("float64") - baseline[:, None], axis=0)
            per_tap[tap.name]["seconds"] += time.perf_counter() - tap_started
        examples += batch
    seconds = time.perf_counter() - started
    logger.info(
        "DELTA channel attention: %d examples, %d forward passes (%d prefix + %d suffix) in %.1f s; per tap: %s",
        examples,
        prefix_passes + suffix_passes,
        prefix_passes,
        suffix_passes,
        seconds,
        ", ".join(
            f"{name} {cost['mode']} {cost['passes']} passes {cost['seconds']:.1f} s"
            for name, cost in per_tap.items()
        ),
    )
    stats = {
        "prefix_passes": prefix_passes,
        "suffix_passes": suffix_passes,
        "seconds": seconds,
        "taps": per_tap,
    }
    return mean_importance(totals, examples, prefix_passes + suffix_passes, return_stats, stats)


def mean_importance(totals, examples, passes, return_stats, extra_stats=None):
    """Per-example mean loss increases `{tap: [C]}` (and the cost stats) from summed totals."""
    if not examples:
        raise ValueError("Expected at least one (x, y) batch. Received: an empty `batches`")
    importance = {name: (total / examples).tolist() for name, total in totals.items()}
    stats = {"forward_passes": passes, "examples": examples, **(extra_stats or {})}
    return (importance, stats) if return_stats else importance
