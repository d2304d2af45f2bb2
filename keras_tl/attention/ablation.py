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
convolution tap, Alg. 1's "setting all elements of the j-th filter to 0".
"""

import dataclasses
import weakref

import keras
import numpy as np
from keras import ops


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
            isinstance(pool, keras.layers.GlobalAveragePooling2D)
            and pool.data_format == "channels_last"
            and not pool.keepdims
            and pool.output is features
        )


def _ablated_losses_suffix(plan, outputs, y, head, loss, chunk_size):
    """`[B, C]` per-example losses with each channel zeroed, `ceil(C / chunk_size)` suffix passes."""
    tap_output = outputs[plan.input_keys[0]]
    others = [outputs[key] for key in plan.input_keys[1:]]
    batch = tap_output.shape[0]
    count = min(chunk_size, plan.channels)
    # Every pass has the same shape (the last chunk is padded with unmasked copies whose
    # losses are dropped), so the compiled suffix is traced once per tap.
    repeated = [np.concatenate([t] * count, axis=0) for t in others]
    labels = ops.concatenate([y] * count, axis=0)
    losses, passes = [], 0
    for start in range(0, plan.channels, count):
        keep = 1.0 - np.eye(plan.channels, dtype=tap_output.dtype)[start : start + count]
        keep = np.concatenate([keep, np.ones((count - len(keep), plan.channels), keep.dtype)])
        keep = keep.reshape((count,) + (1,) * (tap_output.ndim - 1) + (plan.channels,))
        masked = (tap_output[None] * keep).reshape((-1,) + tap_output.shape[1:])
        features = plan.suffix.predict_on_batch([masked, *repeated])
        chunk_losses = ops.reshape(loss(labels, head(features)), (count, batch))
        losses.append(ops.transpose(chunk_losses)[:, : min(count, plan.channels - start)])
        passes += 1
    return ops.concatenate(losses, axis=1), passes


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


def channel_importance(model, batches, taps=None, chunk_size=32, loss=None, return_stats=False):
    """Mean loss increase per channel of each tap when that channel is zeroed (batched; Alg. 1, Eq. 9).

    W_j = 1/n Σ_i [L(z(x_i, ω*\\j), y_i) − L(z(x_i, ω*), y_i)] over the n examples of
    `batches`, with the model in inference mode (BatchNorm uses moving statistics).

    Args:
        model: a `keras_tl.TransferModel` (usually the L2-FE one); its target backbone and
            new head are ablated as they are.
        batches: an iterable of `(x, y)` batches (numpy arrays or tensors).
        taps: tap layer names (default: `model.taps`).
        chunk_size: channels ablated per suffix pass (the suffix sees `chunk_size × batch`
            examples at once: lower it if memory is short).
        loss: `loss(y, logits) -> [batch]` per-example loss (default: sparse categorical
            cross-entropy on logits).
        return_stats: also return `{"forward_passes": ..., "examples": ...}`.

    Returns:
        `{tap: [float] * channels}` (and the stats if asked).
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"Expected chunk_size to be a positive int. Received: chunk_size={chunk_size!r}")
    taps = list(model.taps if taps is None else taps)
    loss = loss or per_example_cross_entropy
    plan = ablation_plan(model, taps)
    totals = {tap.name: np.zeros(tap.channels, "float64") for tap in plan.taps}
    examples = passes = 0
    for x, y in batches:
        y = ops.convert_to_tensor(np.asarray(y))
        outputs = plan.prefix.predict_on_batch(np.asarray(x))
        passes += 1
        baseline = loss(y, model.head(outputs["features"]))
        for tap in plan.taps:
            if tap.mode == "unused":
                continue
            if tap.mode == "closed_form":
                ablated = _ablated_losses_closed_form(tap, outputs, y, model.head, loss)
            else:
                ablated, count = _ablated_losses_suffix(tap, outputs, y, model.head, loss, chunk_size)
                passes += count
            increase = ops.sum(ablated - baseline[:, None], axis=0)
            totals[tap.name] += ops.convert_to_numpy(increase).astype("float64")
        examples += int(ops.shape(y)[0])
    return mean_importance(totals, examples, passes, return_stats)


def mean_importance(totals, examples, passes, return_stats):
    """Per-example mean loss increases `{tap: [C]}` (and the cost stats) from summed totals."""
    if not examples:
        raise ValueError("Expected at least one (x, y) batch. Received: an empty `batches`")
    importance = {name: (total / examples).tolist() for name, total in totals.items()}
    stats = {"forward_passes": passes, "examples": examples}
    return (importance, stats) if return_stats else importance
