"""Strict weight copying: every variable matched by a stable key, every mismatch reported by key."""

import re

import keras
from keras import ops

# Keras names a variable created without a name `variable`, `variable_1`, ... from a global
# counter, so two copies of one model (ConvNeXt's LayerScale) name it differently.
_AUTO_NAMED = re.compile(r"^variable(_\d+)?$")
_NUMBER_SUFFIX = re.compile(r"_\d+$")


def layer_variable_keys(layer):
    """`[(suffix, variable)]` for one layer's variables, the suffixes unique and copy-independent.

    A layer whose variables have distinct, explicit names (`kernel`, `bias`) keys them by
    name. Otherwise (a block holding `MultiHeadAttention`, whose sublayers repeat `kernel`
    and are themselves auto-named; a LayerScale's auto-named `variable_N`) the key is the
    position in `layer.weights`, which two models built from one config share, with the
    name's counter stripped for readability: `kernel[0]`, `variable[0]`.
    """
    variables = layer.weights
    names = [v.name for v in variables]
    if len(set(names)) == len(names) and not any(_AUTO_NAMED.match(n) for n in names):
        return list(zip(names, variables, strict=True))
    return [(f"{_NUMBER_SUFFIX.sub('', v.name)}[{i}]", v) for i, v in enumerate(variables)]


def named_variables(model, prefix=""):
    """`{"<layer>/<variable>": variable}` over a model's layers, nested models flattened by path.

    Keys are unique in the model and equal for two models built from the same config (see
    `layer_variable_keys`), so they pair a target with its source copy and name mismatches.
    """
    named = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            named.update(named_variables(layer, prefix=f"{prefix}{layer.name}/"))
            continue
        for suffix, variable in layer_variable_keys(layer):
            key = f"{prefix}{layer.name}/{suffix}"
            if key in named:
                raise ValueError(f"Expected unique layer names. Received a second layer {prefix}{layer.name!r}")
            named[key] = variable
    return named
def _skipped(key, skip):
    return any(key == pattern or key.startswith(pattern.rstrip("/") + "/") for pattern in skip)


def check_compatible(source, target, skip=(), source_name="source", target_name="target"):
    """Raises one `ValueError` naming every missing, unexpected and mis-shaped variable."""
    source_vars = {k: v for k, v in named_variables(source).items() if not _skipped(k, skip)}
    target_vars = {k: v for k, v in named_variables(target).items() if not _skipped(k, skip)}
    missing = sorted(set(target_vars) - set(source_vars))
    unexpected = sorted(set(source_vars) - set(target_vars))
    mismatched = [
        f"{key}: {source_name} shape {tuple(source_vars[key].shape)} != "
        f"{target_name} shape {tuple(target_vars[key].shape)}"
        for key in sorted(set(source_vars) & set(target_vars))
        if tuple(source_vars[key].shape) != tuple(target_vars[key].shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"The weights of {source_name} and {target_name} do not match."]
        if missing:
            lines.append(f"Missing in {source_name} ({len(missing)}): {missing}")
        if unexpected:
            lines.append(f"Not in {target_name} ({len(unexpected)}): {unexpected}")
        if mismatched:
            lines.append(f"Shape mismatches ({len(mismatched)}): {mismatched}")
        raise ValueError("\n".join(lines))
    return source_vars, target_vars


def copy_weights(source, target, skip=(), source_name="source", target_name="target"):
    """Copies every variable of `source` into the same-named variable of `target`.

    Strict like big_vision's `merge_params`: nothing is skipped unless a `skip` entry
    (a `layer` or `layer/variable` key) names it, and any mismatch fails before anything
    is written. Values go through numpy so that no two variables share a buffer (JAX
    donates buffers in `fit`).
    """
    source_vars, target_vars = check_compatible(source, target, skip, source_name, target_name)
    for key, variable in target_vars.items():
        variable.assign(ops.convert_to_numpy(source_vars[key]))
