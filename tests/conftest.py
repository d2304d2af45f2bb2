"""Shared fixtures: a tiny source network, data, and running code under the other backend."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.testing import TINY_TAPS as TAPS
from keras_tl.testing import tiny_data, tiny_source

BACKEND = keras.backend.backend()


def compile_sgd(model, lr=0.1, momentum=0.0):
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_python(code, backend, env=None, timeout=600):
    """Runs `code` in a fresh interpreter under `backend`; returns what it printed as JSON on its last line."""
    full_env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    if result.returncode != 0:
        raise AssertionError(f"{backend} subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def value_and_grad(fn, arrays):
    """`fn(list_of_tensors) -> scalar` and its gradient w.r.t. each array, on the active backend."""
    arrays = [np.asarray(a, dtype="float32") for a in arrays]
    if BACKEND == "jax":
        import jax

        value, grads = jax.value_and_grad(lambda xs: fn(xs))([jax.numpy.asarray(a) for a in arrays])
    else:
        import tensorflow as tf

        tensors = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(tensors)
        grads = [tf.zeros_like(t) if g is None else g for g, t in zip(tape.gradient(value, tensors), tensors, strict=True)]
    return float(keras.ops.convert_to_numpy(value)), [keras.ops.convert_to_numpy(g) for g in grads]


def on_backend(name, reason="backend-independent"):
    """Runs a case only in the `name` session: for a slow case that checks nothing the backends do
    differently (layer names, a full keras.applications graph that another case trains on the other)."""
    return pytest.mark.skipif(BACKEND != name, reason=f"{reason}; executed once, in the {name} session")


only_once = on_backend("tensorflow", reason="runs both backends in subprocesses")


@pytest.fixture
def source():
    return tiny_source()


@pytest.fixture(autouse=True)
def _clear_session():
    yield
    # No `gc.collect()` (free_memory): over the whole heap of a TF process it took 1-4 s per test,
    # 42 % of the suite's time; Python's own collector still frees the cycles.
    keras.backend.clear_session(free_memory=False)


__all__ = ["keras_tl", "tiny_source", "tiny_data", "compile_sgd", "run_python", "only_once", "on_backend", "value_and_grad", "TAPS"]
