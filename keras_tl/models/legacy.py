"""`.keras` files of keras_tl 0.1: recognised, converted to the current layout, and loaded.

keras_tl 0.1's `TransferModel` had an `active_regularizers` property that Keras' saving walked
before the model's `layers`, so its `.keras` files store the regularizers' variables (their
`scale`, AFA/SPA/GCA's attention layers) under `active_regularizers/<name>`; since 0.2 they are
under `layers/<name>` like every other tracked layer (0.1's layout also lost a staged model's
inactive terms: they moved to `layers/` once a stage switch made them inactive). Every other
variable kept its path, and 0.1's config key `source_head` is read as `keep_source_head`.
`keras_tl.models.load_model` converts such a file in memory; `convert_legacy` rewrites it.
"""

import io
import os
import tempfile
import warnings
import zipfile

from keras_tl.utils import files

WEIGHTS = "model.weights.h5"
LEGACY_GROUP = "active_regularizers"


def _weights_file(archive):
    import h5py

    return h5py.File(io.BytesIO(archive.read(WEIGHTS)), "r")


def is_legacy(path):
    """True for a `.keras` file whose regularizers are stored in keras_tl 0.1's layout."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        if WEIGHTS not in archive.namelist():
            return False
        with _weights_file(archive) as weights:
            return LEGACY_GROUP in weights


def convert_legacy(path, output):
    """Writes `path` (a keras_tl 0.1 `.keras` file) to `output` in the current layout; returns `output`.

    Example:
    >>> keras_tl.models.convert_legacy("old/finetuned.keras", "finetuned.keras")
    """
    import h5py

    if not is_legacy(path):
        raise ValueError(f"Expected a .keras file of keras_tl 0.1 (regularizers under {LEGACY_GROUP!r}). Received: {path!r}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as archive:
        with _weights_file(archive) as old, h5py.File(buffer, "w") as new:
            for key, value in old.attrs.items():
                new.attrs[key] = value
            for name in old:
                if name != LEGACY_GROUP:
                    old.copy(old[name], new, name=name)
            layers = new.require_group("layers")
            for name in old[LEGACY_GROUP]:
                if name in layers:
                    raise ValueError(f"Expected {path!r} to hold regularizer {name!r} once. Received it twice.")
                old.copy(old[LEGACY_GROUP][name], layers, name=name)
        temp = output + files.TEMP_SUFFIX
        with zipfile.ZipFile(temp, "w") as converted:
            for item in archive.infolist():
                data = buffer.getvalue() if item.filename == WEIGHTS else archive.read(item.filename)
                converted.writestr(item, data)
    os.replace(temp, output)
    return output


def load_legacy(path, load):
    """`load(converted path)` of a keras_tl 0.1 file converted in a temporary folder, with a warning."""
    warnings.warn(
        f"{path} was written by keras_tl 0.1; it was converted in memory. Rewrite it once with "
        f"keras_tl.models.convert_legacy({path!r}, <new path>) to load it with keras.models.load_model.",
        stacklevel=3,
    )
    with tempfile.TemporaryDirectory() as folder:
        return load(convert_legacy(path, os.path.join(folder, os.path.basename(path))))
