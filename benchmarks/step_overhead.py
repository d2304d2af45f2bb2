"""Step-time overhead of each registered method relative to L2 (plain fine-tuning with weight decay).

Run once per backend; every number is a ratio of median step times measured in this one
process (absolute times depend on the machine):

    KERAS_BACKEND=tensorflow python -m benchmarks.step_overhead
    KERAS_BACKEND=jax python -m benchmarks.step_overhead --cases=l2,l2_sp,l2_sp+dtnh
    python -m benchmarks.step_overhead --backbone=resnet50 --image_size=224 --batch_size=8 \
        --cases=keras,l2,l2_sp,l2_sp+dtnh,delta --policy=mixed_float16

The cases are the benchmark's table labels (`benchmarks.plans.table_labels`: every registered
method, and DTNH(X) where the benchmark runs it) plus `keras`, a plain `keras.Model` (backbone
+ Dense head) compiled and fit the same way, the reference for L2. Each method's model is its
own `build` on `--backbone` (default a CIFAR ResNet-20 at 32x32, random weights, a 20-class
upstream head), prepared on a small synthetic split with its `quick_hparams` (DELTA's channel
weights, Co-Tuning's relationship, DI2's sequences are measured there), batch `--batch_size`,
under the dtype policy `--policy`; a staged method (AFA, SPA→GCA) is timed in its first stage.
Each trains `--steps` steps with `fit` after `--warmup` steps; cases run in interleaved rounds
so that machine drift affects all alike. A case's ratio is printed against its baseline (X for
DTNH(X), L2 for the others, `keras` for L2). Images/s are printed too (absolute, so only
comparable on one machine).
"""

import argparse
import json
import statistics
import time
import types

import keras
import numpy as np
import tensorflow as tf

import keras_tl
from benchmarks import plans

NUM_CLASSES = 10
SOURCE_CLASSES = 20
KERAS = "keras"


def baseline(case):
    """The case a case's ratio is taken against."""
    if case == KERAS:
        return None
    name, dtnh = keras_tl.methods.split_label(case)
    return name if dtnh else (KERAS if case == "l2" else "l2")


def synthetic_split(x, y, batch_size):
    """A training split over `(x, y)` for the methods' data-dependent preparation."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)
    return types.SimpleNamespace(
        dataset=dataset, num_classes=NUM_CLASSES, num_examples=len(y), batch_size=batch_size
    )


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def stop(self, logs):
        # Reading a log value waits for the (asynchronously dispatched) step to finish.
        float(np.asarray(logs["loss"]))
        self.times.append(time.perf_counter() - self._start)


class _StopTimer(keras.callbacks.Callback):
    """Stops a `_StepTimer` after the callbacks listed before it have run their batch end."""

    def __init__(self, timer):
        super().__init__()
        self.timer = timer

    def on_train_batch_end(self, batch, logs=None):
        self.timer.stop(logs)


def pretrain_briefly(source, x, y, batch_size):
    """A few epochs on the synthetic data (its classes as the first upstream classes), BatchNorm
    statistics from it: a source whose outputs tell the classes apart, as the methods' preparation
    expects (a fresh one ranks the upstream classes the same for every image)."""
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    source.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    source.fit(x, y, batch_size=batch_size, epochs=5, verbose=0)


def build_model(case, source, taps, train, validation):
    """`(model, callbacks)`: the case's model compiled as `keras_tl.fine_tune` compiles it (the
    method's optimizer wrapper: FTP, SPD, Auto-RGN) and its per-step callbacks (TPGM's projection)."""
    callbacks = []
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    if case == KERAS:  # plain Keras: the source's features, a new Dense head
        features = source.layers[-1].input
        model = keras.Model(source.inputs, keras.layers.Dense(NUM_CLASSES, name="head")(features))
    else:
        method = keras_tl.methods.get(case, **plans.method_class(case).quick_hparams)
        setup = method.setup(source, train, taps, validation=validation)
        model = method.build(source, train, taps=taps, setup=setup)
        for callback in method.callbacks(1, 1, setup):
            if isinstance(
                callback, keras_tl.callbacks.StagedRegularization
            ):  # a staged method: its first stage
                model.set_active_regularizers(callback.stages[0])
            else:
                callbacks.append(callback)
        optimizer = method.optimizer(optimizer)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, callbacks


def time_case(model, x, y, batch_size, steps, callbacks=()):
    timer = _StepTimer()
    model.fit(
        x[: batch_size * steps],
        y[: batch_size * steps],
        batch_size=batch_size,
        epochs=1,
        verbose=0,
        # The method's callbacks inside the timed span: the timer starts first and stops last.
        callbacks=[timer, *callbacks, _StopTimer(timer)],
        shuffle=False,
    )
    return timer.times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = [KERAS, *plans.table_labels()]
    parser.add_argument("--cases", default=",".join(cases), help=f"comma-separated, from {cases}")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbone", default="cifar_resnet20", help="a keras_tl.backbones name")
    parser.add_argument("--image_size", type=int, default=0, help="input size; 0: the backbone's default")
    parser.add_argument("--policy", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    names = [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in cases]
    if unknown:
        parser.error(f"unknown cases {unknown}; expected names from {cases}")
    pending = list(names)
    while pending:  # a ratio needs its baseline measured too, and that one its own
        needed = baseline(pending.pop())
        if needed and needed not in names:
            names.insert(0, needed)
            pending.append(needed)

    keras.config.set_dtype_policy(args.policy)
    keras.utils.set_random_seed(0)
    size = args.image_size or keras_tl.backbones.default_input_shape(args.backbone)[0]
    input_shape = (size, size, 3)
    source = keras_tl.backbones.build(
        args.backbone, input_shape=input_shape, include_top=True, classes=SOURCE_CLASSES
    )
    taps = keras_tl.backbones.default_taps(args.backbone)
    rng = np.random.default_rng(0)
    n = max(args.batch_size * max(args.steps, args.warmup), 8 * NUM_CLASSES)
    # Every class, each with a pattern of its own: the methods' preparation (Co-Tuning's relationship,
    # DI2's sequences) needs classes the source tells apart.
    y = rng.permutation(np.arange(n) % NUM_CLASSES).astype("int32")
    patterns = rng.uniform(-1, 1, (NUM_CLASSES,) + input_shape)
    x = (0.5 * rng.uniform(-1, 1, (n,) + input_shape) + patterns[y]).astype("float32")

    pretrain_briefly(source, x, y, args.batch_size)
    train = synthetic_split(x, y, args.batch_size)
    validation = (x[: 4 * NUM_CLASSES], y[: 4 * NUM_CLASSES])  # LP-FT's C, TPGM's radii
    models = {}
    for name in names:
        models[name] = build_model(name, source, taps, train, validation)
        model, callbacks = models[name]
        time_case(model, x, y, args.batch_size, args.warmup, callbacks)  # compile + warm caches
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            model, callbacks = models[name]
            times[name] += time_case(model, x, y, args.batch_size, args.steps, callbacks)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} input={input_shape} batch={args.batch_size} "
        f"policy={args.policy} steps={args.steps}x{args.rounds} rounds"
    )
    print(f"{'case':<22}{'median ms':>10}{'images/s':>10}  {'ratio':>24}")
    results = {}
    for name in names:
        reference = baseline(name)
        ratio = medians[name] / medians[reference] if reference else None
        ratio_text = f"{ratio:.3f} vs {reference}" if reference else "-"
        images_per_second = args.batch_size / medians[name]
        print(f"{name:<22}{medians[name] * 1e3:>10.1f}{images_per_second:>10.1f}  {ratio_text:>24}")
        results[name] = {
            "median_s": medians[name],
            "images_per_s": images_per_second,
            "baseline": reference,
            "ratio": ratio,
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"backend": keras.backend.backend(), "args": vars(args), "results": results}, f, indent=2
            )
    return results


if __name__ == "__main__":
    main()
