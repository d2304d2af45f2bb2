"""Backup and restore whose checkpoint survives a kill at any instant and keeps the whole history."""

import json
import logging
import os
import shutil

import keras

from keras_tl.api_export import keras_tl_export
from keras_tl.utils import files, run_identity

logger = logging.getLogger(__name__)

METADATA = "training_metadata.json"
WEIGHTS_SUFFIX = ".weights.h5"
# What `keras.callbacks.BackupAndRestore` writes: a folder it left behind still resumes.
KERAS_WEIGHTS = "latest.weights.h5"


@keras_tl_export("keras_tl.callbacks.AtomicBackupAndRestore")
class AtomicBackupAndRestore(keras.callbacks.Callback):
    """`keras.callbacks.BackupAndRestore` that a kill at any instant cannot corrupt.

    Keras' callback overwrites `latest.weights.h5` in place, then the epoch number in
    `training_metadata.json`: a SIGKILL inside the first write leaves a file h5py cannot
    open (every rerun fails until the folder is deleted by hand), and one between the two
    writes pairs new weights with the old epoch number. Its `double_checkpoint=True`
    fallback only covers an `OSError` while loading the weights: a metadata file cut
    short (a `JSONDecodeError`) or the new-weights/old-epoch pair still fail or resume
    wrongly. Here the metadata is the single commit point:

    1. the weights of epoch e go to a new file `epoch-<e>.weights.h5`, flushed to disk;
    2. `training_metadata.json` (`{"epoch", "weights", "history"}`) is written to a temp
       file and `os.replace`d: the rename is atomic, so it names the old checkpoint or the
       new one, each complete;
    3. the older weights file is deleted.

    `on_train_begin` loads the checkpoint the metadata names and deletes whatever a killed
    save left (a partial weights file, a temp file). The metadata also holds every finished
    epoch's logs, so the `History` that `fit` returns covers all epochs, those trained
    before a restart included. When training ends, the folder is deleted
    (`delete_checkpoint=True`). Saves once per epoch (Keras' `save_freq="epoch"`).

    With `identity` (`keras_tl.utils.run_identity.make`; `keras_tl.fine_tune` passes its run's), the
    metadata records it: a rerun with the same identity resumes (logging "Resuming from epoch
    N"), one with another is refused naming each setting that differs, unless `overwrite`. A
    checkpoint holding more epochs than `fit` asks for is refused too: it would train none and
    return the old run's weights as if they were this one's.

    Args:
        backup_dir: the folder of the checkpoint; one training run per folder.
        delete_checkpoint: delete the folder when `fit` finishes.
        identity: the run's identity, or None (no check; a plain `fit`).
        overwrite: start over when the checkpoint is another run's (other identity, or more
            epochs than this `fit`), instead of refusing. A checkpoint of this very run still
            resumes, so the same command with `overwrite` stays resumable.

    Example:
    >>> model.fit(ds, epochs=10, callbacks=[keras_tl.callbacks.NaNGuard(),
    ...                                     keras_tl.callbacks.AtomicBackupAndRestore("backup")])
    """

    def __init__(self, backup_dir, delete_checkpoint=True, identity=None, overwrite=False):
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(
                f"Expected backup_dir to be a non-empty path. Received: backup_dir={backup_dir!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)
        if identity is not None and not (
            isinstance(identity, dict) and {"settings", "digest"} <= set(identity)
        ):
            raise ValueError(
                "Expected identity to be None or a dict from keras_tl.utils.run_identity.make. "
                f"Received: identity={identity!r}"
            )
        self.identity = identity
        self.overwrite = bool(overwrite)
        self.restored_epoch = 0
        self._history = {}
        self._epochs_run = 0

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "delete_checkpoint": self.delete_checkpoint,
            "identity": self.identity,
            "overwrite": self.overwrite,
        }

    # ------------------------------------------------------------------------------ restore

    def on_train_begin(self, logs=None):
        self.restored_epoch, self._history, self._epochs_run = 0, {}, 0
        metadata = self.check((self.params or {}).get("epochs"))
        if metadata is None:
            return
        path = os.path.join(self.backup_dir, metadata["weights"])
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # its variables must exist to be loaded
        from keras_tl.models import loading  # not at import: keras_tl.models imports the trainers

        try:
            # Strict: a model built with other flags (e.g. another class count) is named variable by
            # variable, not reported by Keras as "expected 2 variables, received 0".
            loading.load_weights(self.model, path)
        except ValueError as error:
            reason = (
                f"{error}. The checkpoint in {self.backup_dir} was written by a run with other settings: "
                f"rerun with the flags that wrote it, use a new folder, or {run_identity.OVERWRITE_HINT} "
                "to start over."
            )
            if not self.overwrite:
                raise ValueError(reason) from error
            self._overwrite(reason)
            return
        self.restored_epoch = int(metadata["epoch"])
        self._history = {key: list(values) for key, values in metadata.get("history", {}).items()}
        # The one hook `fit` reads to start at a later epoch; Keras' own BackupAndRestore sets it too.
        self.model._initial_epoch = self.restored_epoch
        logger.info("Resuming from epoch %d (the checkpoint in %s).", self.restored_epoch, self.backup_dir)

    def check(self, epochs=None):
        """The metadata of the checkpoint this run resumes from, or None; refuses another run's.

        `on_train_begin` calls it; `keras_tl.fine_tune` also calls it before its costly
        preparation, so a refused rerun fails at once. It deletes what a killed save left and,
        with `overwrite`, another run's checkpoint.

        Args:
            epochs: the epochs `fit` asks for (None: not checked).
        """
        metadata = self._read_metadata()
        self._remove_stale(metadata and metadata["weights"])
        if metadata is None:
            return None
        recorded = metadata.get("identity")
        mismatch = (
            self.identity is not None
            and recorded is not None
            and recorded.get("digest") != self.identity["digest"]
        )
        if epochs is not None and int(metadata["epoch"]) > epochs:
            others = mismatch and run_identity.differences(
                recorded.get("settings"), self.identity["settings"]
            )
            others = [line for line in others or () if not line.startswith("epochs:")]
            return self._overwrite(
                f"The checkpoint in {self.backup_dir} holds {metadata['epoch']} finished epochs, and this run asks "
                f"for epochs={epochs}: resuming would train none and return that run's weights. "
                + (f"Other settings differ too ({'; '.join(others)}). " if others else "")
                + f"Use a new folder to keep it, or {run_identity.OVERWRITE_HINT} to start over."
            )
        if mismatch:
            where = f"The checkpoint in {self.backup_dir}"
            return self._overwrite(
                run_identity.mismatch(where, recorded.get("settings"), self.identity["settings"])
            )
        if self.identity is not None and recorded is None:
            logger.info(
                "The checkpoint in %s records no settings (older keras_tl): resuming it.", self.backup_dir
            )
        return metadata

    def _overwrite(self, reason):
        """Raises `reason`; with `overwrite`, deletes the checkpoint's files (not the folder: it
        may hold the run's lock file) and returns None: the run starts over."""
        if not self.overwrite:
            raise ValueError(reason)
        logger.warning("Overwriting the checkpoint of another run: %s", reason)
        os.remove(os.path.join(self.backup_dir, METADATA))
        self._remove_stale(None)
        return None

    def _read_metadata(self):
        path = os.path.join(self.backup_dir, METADATA)
        if not os.path.isfile(path):
            return None
        with open(path) as handle:
            text = handle.read()
        try:
            metadata = json.loads(text)
            metadata.setdefault("weights", KERAS_WEIGHTS)
            int(metadata["epoch"])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(
                f"Expected {path} to hold a checkpoint's metadata. Received: {text[:80]!r} (a file cut "
                f"short by a kill during Keras' BackupAndRestore?). Delete {self.backup_dir} to start over."
            ) from error
        if not os.path.isfile(os.path.join(self.backup_dir, metadata["weights"])):
            raise FileNotFoundError(
                f"Expected the weights file {metadata['weights']!r} that {path} names. Received: no such "
                f"file in {self.backup_dir}. Delete {self.backup_dir} to start over."
            )
        return metadata

    def _remove_stale(self, keep):
        """Deletes the weights and temp files other than `keep`: what a save killed half-way left."""
        if not os.path.isdir(self.backup_dir):
            return
        for name in os.listdir(self.backup_dir):
            if name != keep and (name.endswith(WEIGHTS_SUFFIX) or name.endswith(files.TEMP_SUFFIX)):
                os.remove(os.path.join(self.backup_dir, name))

    # ------------------------------------------------------------------------------ save

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_run += 1
        for key, value in (logs or {}).items():
            self._history.setdefault(key, []).append(float(value))
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"epoch-{epoch + 1}{WEIGHTS_SUFFIX}"
        path = os.path.join(self.backup_dir, name)
        self.model.save_weights(path, overwrite=True)
        files.fsync_file(path)
        # The commit point: until this rename the metadata names the previous, complete checkpoint.
        files.write_json(
            os.path.join(self.backup_dir, METADATA),
            {"epoch": epoch + 1, "weights": name, "history": self._history, "identity": self.identity},
        )
        self._remove_stale(name)

    def on_train_end(self, logs=None):
        history = getattr(self.model, "history", None)
        if self._epochs_run == 0 or not isinstance(history, keras.callbacks.History):
            # Every epoch was restored: `fit` trained none, so no History of this `fit` exists yet.
            history = keras.callbacks.History()
            history.set_model(self.model)
            self.model.history = history
        history.history = {key: list(values) for key, values in self._history.items()}
        history.epoch = list(range(self.restored_epoch + self._epochs_run))
        # The resume hook is for this `fit` only: Keras' trainers keep reading it, so a later `fit` of
        # the same model (select's cool-down, a user's own) would restart at the restored epoch.
        self.model._initial_epoch = None
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)
