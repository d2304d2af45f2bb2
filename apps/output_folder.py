"""An app's --output_dir belongs to one process and one run.

One process: a second app started on the same folder would delete the first's checkpoints
and overwrite its results; `keras_tl.utils.locks.folder_lock` refuses it, naming the pid that
has the folder (a folder left by a killed process is taken over).

One run: the folder's `identity.json` records the settings that decide the results (every
config field but where the outputs go and how verbose the run is; the source by its file's
digest, so a moved file is the same source and a replaced one is not). A rerun with other
settings over a folder that holds results or checkpoints is refused, naming each flag that
differs, unless --overwrite; a folder where nothing was trained yet is simply claimed again.
"""

import contextlib
import dataclasses
import os

from keras_tl.callbacks.backup import METADATA
from keras_tl.utils import locks, run_identity

# Fields that say where outputs go or how a run shows itself: they change no result.
NOT_IDENTITY = (
    "output_dir", "backup_dir", "export", "export_dir", "export_name", "verbose", "distribute", "overwrite",
    "unsafe_deserialization", "data_dir",
)


@contextlib.contextmanager
def owned(config):
    """Holds `config.output_dir` for this process and claims it for `config`'s run (see the module docstring)."""
    with locks.folder_lock(config.output_dir):
        overwrite = config.overwrite or not holds_work(config)
        run_identity.claim_folder(config.output_dir, identity(config), overwrite=overwrite, name="--output_dir")
        yield


def identity(config):
    """`keras_tl.utils.run_identity.make` of the fields of `config` that decide its results."""
    settings = {key: value for key, value in dataclasses.asdict(config).items() if key not in NOT_IDENTITY}
    for key in ("source", "source_weights"):
        if settings.get(key) and os.path.isfile(settings[key]):
            settings[key] = run_identity.file_digest(settings[key])
    return run_identity.make(settings)


def holds_work(config):
    """Whether the folder holds results or a checkpoint that a run with other settings would mix with its own."""
    if os.path.isfile(os.path.join(config.output_dir, "results.json")):
        return True
    for _, _, filenames in os.walk(config.backup()):
        if METADATA in filenames:
            return True
    return False
