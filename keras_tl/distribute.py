"""Choosing how training is spread over devices and machines: one name, one context.

| name           | backend    | engine                                                          |
|----------------|------------|-----------------------------------------------------------------|
| `none`         | any        | one device                                                      |
| `mirrored`     | tensorflow | `tf.distribute.MirroredStrategy` over the local devices         |
| `multi_worker` | tensorflow | `tf.distribute.MultiWorkerMirroredStrategy`, cluster in TF_CONFIG |
| `multi_worker` | jax        | `keras.distribution.initialize()` (one process per host, the     |
|                |            | coordinator in KERAS_DISTRIBUTION_JOB_ADDRESSES, the count in    |
|                |            | KERAS_DISTRIBUTION_NUM_PROCESSES, this process's                 |
|                |            | index in KERAS_DISTRIBUTION_PROCESS_ID) + `DataParallel`        |
| `data_parallel`| jax        | `keras.distribution.DataParallel` over the local devices        |

Build and compile the model inside `scope(name)`. What a `TransferModel` does under them:
Keras divides its own loss by the replica count and the TF optimizer sums the replicas'
gradients, so the trainer divides the regularization terms the same way; DTNH's
projection is not linear, so its two gradients are all-reduced before it (TF) or computed
on the global batch (JAX, where `jit` sees the whole sharded batch). BatchNorm under
`mirrored`/`multi_worker` (TF) normalises each replica's shard; BSS's singular values are
those of each replica's shard there, and of the global batch under JAX.

Keras 3.15's TF `fit` reduces the first input batch, an `(x, y)` tuple, with one
`strategy.reduce` call, which `MultiWorkerMirroredStrategy` cannot do; `TransferModel`'s
TF trainer hands `fit` that strategy with a `reduce` that maps over the tuple (see
`keras_tl/trainers/tensorflow.py`). Two workers on 127.0.0.1 take the same step as one
process, on both backends (`tests/distribute/test_multi_worker.py`). A plain
`keras.Model` (e.g. `apps.pretrain`'s source) still hits the Keras bug under `multi_worker`.
"""

import contextlib

import keras

STRATEGIES = {
    "tensorflow": ("none", "mirrored", "multi_worker"),
    "jax": ("none", "data_parallel", "multi_worker"),
}


def scope(name="none"):
    """A context manager to build, compile and fit under; validates `name` for the backend."""
    backend = keras.backend.backend()
    allowed = STRATEGIES.get(backend, ("none",))
    if name not in allowed:
        raise ValueError(
            f"Expected distribute to be one of {list(allowed)} on the {backend} backend. Received: distribute={name!r}"
        )
    if name == "none":
        return contextlib.nullcontext()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()
        return strategy.scope()
    import jax

    if name == "multi_worker":
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts need explicit collectives
        keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    return contextlib.nullcontext()
