"""DELTA's Alg. 1 as written: zero one filter, re-run the whole network, restore; for every channel.

N+1 full forward passes per batch for N channels. It is the reference that the batched
`channel_importance` is tested against, and the baseline of `benchmarks/delta_attention_cost.py`.
"""

import numpy as np
from keras import ops

from keras_tl.channel_weights.ablation import mean_importance, per_example_cross_entropy


def _filter_variables(layer, channels):
    kernel = getattr(layer, "kernel", None)
    if kernel is None or tuple(kernel.shape)[-1] != channels:
        raise ValueError(
            "Expected a tap with a kernel whose last axis holds its output filters (Conv2D, Dense): "
            f"the per-channel loop zeroes filter weights. Received: tap {layer.name!r} "
            f"({type(layer).__name__})"
        )
    bias = getattr(layer, "bias", None)
    return [kernel] if bias is None else [kernel, bias]


def channel_importance_loop(model, batches, taps=None, loss=None, return_stats=False):
    """Mean loss increase per filter of each tap when that filter is zeroed, one filter at a time.

    Same result and arguments as `keras_tl.channel_weights.channel_importance` (without
    `chunk_size`); each tap must hold its filters in a `kernel` (and `bias`) whose last
    axis is the output channel. The weights are restored afterwards, even on error.
    """
    taps = list(model.taps if taps is None else taps)
    loss = loss or per_example_cross_entropy
    backbone = model.target_backbone
    layers = {name: backbone.get_layer(name) for name in taps}
    channels = {name: int(layer.output.shape[-1]) for name, layer in layers.items()}
    variables = {name: _filter_variables(layer, channels[name]) for name, layer in layers.items()}
    totals = {name: np.zeros(channels[name], "float64") for name in taps}
    examples = passes = 0

    def losses(x, y):
        return loss(y, model.predict_on_batch(x))

    for x, y in batches:
        x, y = np.asarray(x), ops.convert_to_tensor(np.asarray(y))
        baseline = losses(x, y)
        passes += 1
        for name in taps:
            originals = [ops.convert_to_numpy(v) for v in variables[name]]
            try:
                for j in range(channels[name]):
                    for variable, original in zip(variables[name], originals, strict=True):
                        ablated = original.copy()
                        ablated[..., j] = 0
                        variable.assign(ablated)
                    totals[name][j] += float(ops.convert_to_numpy(ops.sum(losses(x, y) - baseline)))
                    passes += 1
            finally:
                for variable, original in zip(variables[name], originals, strict=True):
                    variable.assign(original)
        examples += int(ops.shape(y)[0])
    return mean_importance(totals, examples, passes, return_stats)
