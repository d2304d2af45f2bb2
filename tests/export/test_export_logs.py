"""`export_serving` keeps TensorFlow's INFO lines out of an app's log (the signature renaming, one per variable)."""

import logging

import keras
import pytest
from absl import logging as absl_logging

from keras_tl.export import export_serving


def small_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


@pytest.fixture
def info_logs(caplog):
    """What an app logging at INFO (absl's verbosity, TensorFlow's logger) would show."""
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    caplog.set_level(logging.INFO, logger="tensorflow")
    yield caplog
    absl_logging.set_verbosity(verbosity)


def test_export_logs_no_info_lines_and_restores_the_levels(tmp_path, info_logs):
    info_logs.clear()
    export_serving(small_model(), str(tmp_path), name="quiet", preprocess="identity")
    assert [r.getMessage()[:60] for r in info_logs.records if r.levelno == logging.INFO] == []
    assert absl_logging.get_verbosity() == absl_logging.INFO
    assert logging.getLogger("tensorflow").level == logging.INFO
    # Asked for (verbose=True), TensorFlow says what it renames: the lines the default leaves out.
    export_serving(small_model(), str(tmp_path), name="loud", preprocess="identity", verbose=True)
    messages = [r.getMessage() for r in info_logs.records if r.levelno == logging.INFO]
    assert any("renamed" in m for m in messages) and any("Assets written" in m for m in messages)
