"""Strict weight copying: every variable matched by name, every mismatch reported by name."""

import keras
from keras import ops


def named_variables(model, prefix=""):
    """`{"<layer>/<variable>": variable}` over a model's layers, nested models flattened by path."""
    named = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            nested = named_variables(layer, prefix=f"{prefix}{layer.name}/")
            named.update(nested)
            continue
        for variable in layer.weights:
            key = f"{prefix}{layer.name}/{variable.name}"
            if key in named:
                raise ValueError(f"Expected unique variable names. Received a second variable {key!r}")
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
