"""The `keras_tl.select` process of the subprocess tests (`python -m tests.selection.search_process`).

L2 and L2-SP on `tests.selection.test_select.arrays()`, `EPOCHS` epochs, in `DIRECTORY`; prints the
result's config (None on a KerasTuner worker) as JSON on its last line. Each epoch the process
begins is appended to the file `RECORD`. With `PAUSE`, the process stands still after the first
epoch index 1 it finishes (only rung 1 trains that epoch; its checkpoint is already written) and
creates the file `PAUSE`, for the test to kill it there.
"""

import json
import os
import time

import keras

import keras_tl
from keras_tl.testing import TINY_TAPS, tiny_source
from tests.selection.test_select import arrays


class Probe(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        with open(os.environ["RECORD"], "a") as handle:
            handle.write(f"{epoch}\n")

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and os.environ.get("PAUSE"):
            open(os.environ["PAUSE"], "w").close()
            time.sleep(600)


if __name__ == "__main__":
    result = keras_tl.select(
        tiny_source(),
        arrays(),
        0.25,
        directory=os.environ["DIRECTORY"],
        candidates=["l2_sp"],
        epochs=int(os.environ["EPOCHS"]),
        lr=0.05,
        taps=TINY_TAPS,
        batch_size=8,
        callbacks=[Probe()],
        verbose=0,
    )
    print(json.dumps(None if result is None else result.get_config()))
