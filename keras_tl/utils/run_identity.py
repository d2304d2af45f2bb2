"""A run's identity: everything that decides its weights, as a JSON-safe dict and a digest of it.

A checkpoint (`keras_tl.callbacks.AtomicBackupAndRestore`) and an app's output folder record
the identity of the run that wrote them. A rerun with the same identity continues that run;
one with another identity is another run, and resuming it would mix the two (the old epochs'
weights reported under the new settings). So it is refused, naming each setting that differs
(`lr: 0.01 -> 0.05`) and the two ways out: a new folder, or overwrite.

The identity holds no backend, device or path of the machine: a TensorFlow checkpoint resumes
on JAX, and the same source file gives the same identity wherever it lies. The source is
identified by a digest of its weights (an in-memory model) or of its file (the apps).

Example:
>>> identity = keras_tl.utils.run_identity.fine_tune_identity(
...     method, source, train, epochs=10, lr=0.01,
...     momentum=0.9, taps=[], dropout=0.0, seed=0)
>>> identity["digest"], identity["settings"]["lr"]
('3f2a...', 0.01)
"""

import hashlib
import json
import numbers
import os

import numpy as np

from keras_tl.utils import files

OVERWRITE_HINT = "overwrite=True (apps.finetune: --overwrite)"


def make(settings):
    """`{"settings": <JSON-safe settings>, "digest": <16 hex digits of their SHA-256>}`."""
    settings = json_safe(settings)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return {"settings": settings, "digest": hashlib.sha256(text.encode()).hexdigest()[:16]}


def json_safe(value):
    """`value` with tuples as lists, numpy scalars and arrays as Python values, callables by name."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if callable(value):
        return callable_name(value)
    return repr(value)


def callable_name(fn):
    """`"module.qualname"` of a function, or of the class of a callable object (a Keras layer)."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(target, '__module__', '')}.{target.__qualname__}".lstrip(".")


# ------------------------------------------------------------------------------------ digests


def file_digest(path):
    """`"sha256:<hex>"` of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"


def weights_digest(model):
    """`"sha256:<hex>"` of a Keras model's weights: each one's dtype, shape and bytes, in order.

    Not of its config: a layer that Keras names automatically (`conv2d_3`) is named by how many
    layers the process built before, while equal weights are the same source on every backend.
    """
    import keras

    sha = hashlib.sha256()
    for variable in model.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        sha.update(f"{array.dtype.str}{array.shape}".encode())
        sha.update(array.tobytes())
    return f"sha256:{sha.hexdigest()}"


def source_identity(source):
    """A backbone name as itself; a model by `weights_digest`."""
    if isinstance(source, str):
        return {"backbone": source}
    return {"weights": weights_digest(source)}


def data_identity(split):
    """What selected and transformed a split's examples: `Split.selection` (the arguments of
    `keras_tl.data.load`), its class names and example count. A split made by hand has no
    selection: its class names and count stand for it."""
    selection = dict(getattr(split, "selection", None) or {})
    selection.pop("batch_size", None)  # part of the schedule
    return {**selection, "class_names": list(split.class_names), "examples": int(split.num_examples)}


def fine_tune_identity(method, source, train, *, epochs, lr, momentum, taps, dropout, seed):
    """The identity of a `keras_tl.fine_tune` run (see the module docstring)."""
    return make(
        {
            "method": method.label,
            "hparams": dict(method.hparams),
            "epochs": epochs,
            "lr": lr,
            "momentum": momentum,
            "batch_size": train.batch_size,
            "data": data_identity(train),
            "source": source_identity(source),
            "seed": seed,
            "taps": list(taps),
            "dropout": dropout,
        }
    )


# ------------------------------------------------------------------------------------ comparing


def differences(old, new):
    """`["lr: 0.01 -> 0.05", "hparams.alpha: (unset) -> 1"]`: each setting that differs, nested keys dotted."""
    old_flat, new_flat = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(old_flat) | set(new_flat)):
        before, after = old_flat.get(key, _UNSET), new_flat.get(key, _UNSET)
        if before != after:
            lines.append(f"{key}: {_show(before)} -> {_show(after)}")
    return lines


_UNSET = object()


def _flatten(settings, prefix=""):
    flat = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict):  # an empty dict adds no key: `{}` -> `{"alpha": 1}` reads "alpha: (unset) -> 1"
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value):
    if value is _UNSET:
        return "(unset)"
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def mismatch(where, old, new):
    """One line: `where` (e.g. "The checkpoint in runs/x") holds another run, each difference, the ways out."""
    return (
        f"{where} was written by a run with other settings ({'; '.join(differences(old, new))}): "
        f"continuing it would mix two runs. Use a new folder to keep it, or {OVERWRITE_HINT} to replace it."
    )


# ------------------------------------------------------------------------------------ folders

IDENTITY_FILE = "identity.json"


def claim_folder(folder, identity, overwrite=False, name="folder"):
    """Records `identity` in `<folder>/identity.json`; refuses a folder that records another.

    Call it while holding the folder (`keras_tl.utils.locks.folder_lock`). A folder without the
    file (new, or written before identities were recorded) is claimed as it is.

    Args:
        folder: the run's output folder.
        identity: from `make`.
        overwrite: replace another run's identity instead of refusing.
        name: how the message names the folder's setting (`"--output_dir"` in an app).

    Raises:
        ValueError: the folder holds a run with other settings (each named) and not `overwrite`.
    """
    path = os.path.join(folder, IDENTITY_FILE)
    if os.path.isfile(path) and not overwrite:
        with open(path) as handle:
            try:
                recorded = json.load(handle)
            except ValueError:
                recorded = None
        if isinstance(recorded, dict) and recorded.get("digest") != identity["digest"]:
            lines = differences(recorded.get("settings"), identity["settings"])
            raise ValueError(
                f"{folder} holds a run with other settings ({'; '.join(lines)}). Use a new {name} to keep "
                f"it, or {OVERWRITE_HINT} to replace it."
            )
    os.makedirs(folder, exist_ok=True)
    files.write_json(path, identity)
    return path
