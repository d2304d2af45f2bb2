"""Step-time overhead of each regularizer / gradient rule relative to plain fine-tuning.

Run once per backend; every number is a ratio of median step times measured in this one
process (absolute times depend on the machine):

    KERAS_BACKEND=tensorflow python benchmarks/step_overhead.py
    KERAS_BACKEND=jax python benchmarks/step_overhead.py --cases=plain,l2_sp,dtnh_l2_sp
    python benchmarks/step_overhead.py --backbone=resnet50 --image_size=224 --batch_size=8 \
        --cases=keras,plain,l2_sp,dtnh_l2_sp,delta --policy=mixed_float16

Each case builds a `TransferModel` on `--backbone` (default a CIFAR ResNet-20 at 32x32,
random weights), batch `--batch_size`, under the dtype policy `--policy`, and trains
`--steps` steps with `fit` after `--warmup` steps; cases run in interleaved rounds so that
machine drift affects all alike. A case's ratio is printed against its `baseline`; the
`keras` case is a plain `keras.Model` (backbone + Dense head) compiled and fit the same
way, the reference for the TransferModel cases. Images/s are printed too (absolute, so
only comparable on one machine).
"""

import argparse
import json
import statistics
import time

import keras
import numpy as np

import keras_tl

NUM_CLASSES = 10
SOURCE_CLASSES = 20


def _l2_sp():
    return keras_tl.regularizers.L2SP(alpha=0.01, beta=0.01)


def _output_level(name):
    """Output-level terms on the two-head target (every case here has `source_head=True`)."""
    r = keras_tl.regularizers
    if name == "bss":
        return r.BSS(eta=0.001, k=1)
    if name == "co_tuning":
        relationship = np.random.default_rng(0).dirichlet(np.ones(SOURCE_CLASSES), size=NUM_CLASSES)
        return r.CoTuning(lam=2.3, relationship=relationship)
    if name == "lwf":
        return r.LwF(lam=1.0, temperature=2.0)
    sequences = [[m, (m + 1) % SOURCE_CLASSES, (m + 7) % SOURCE_CLASSES] for m in range(NUM_CLASSES)]
    return r.DiscrepantDiffusion(lam=0.001, sequences=sequences)


def _feature_map(name, source, taps):
    """Feature-map terms on the backbone's default taps; DELTA with uniform channel weights."""
    r = keras_tl.regularizers
    weights = {tap: [1.0] * source.get_layer(tap).output.shape[-1] for tap in taps}
    return {
        "distillation": lambda: r.FeatureMapDistillation(alpha=0.01),
        "delta": lambda: r.DELTA(alpha=0.01, channel_weights=weights),
        "l2_sp_attention": lambda: r.L2SPAttention(alpha=0.01, beta=0.01, channel_weights=weights),
        "ast": lambda: r.AST(alpha=0.01),
        "act": lambda: r.ACT(alpha=0.01),
        "spa": lambda: r.SPA(alpha=0.01),
        "gca": lambda: r.GCA(alpha=0.01),
    }[name]()


# name -> (builder of TransferModel kwargs from (source, taps), baseline case, target ratio or None).
# `keras` builds a plain keras.Model instead (see `build_model`).
CASES = {
    "keras": (None, None, None),
    "plain": (lambda *_: {}, "keras", 1.05),
    "l2_sp": (lambda *_: {"regularizers": [_l2_sp()]}, "plain", 1.05),
    "dtnh_l2_sp": (
        lambda *_: {"regularizers": [_l2_sp()], "gradient_rule": keras_tl.gradients.DTNH()},
        "l2_sp",
        1.10,
    ),
    # Head-only terms (<= 1.15); LwF needs the frozen source forward pass (<= 1.35).
    "bss": (lambda *_: {"regularizers": [_output_level("bss")]}, "plain", 1.15),
    "co_tuning": (lambda *_: {"regularizers": [_output_level("co_tuning")]}, "plain", 1.15),
    "di2": (lambda *_: {"regularizers": [_output_level("di2")]}, "plain", 1.15),
    "lwf": (lambda *_: {"regularizers": [_output_level("lwf")]}, "plain", 1.35),
    # Feature-map terms: one frozen source forward pass more than plain fine-tuning (<= 1.35).
    **{
        name: (
            lambda source, taps, name=name: {"regularizers": [_feature_map(name, source, taps)]},
            "plain",
            1.35,
        )
        for name in ("distillation", "delta", "ast", "act", "spa", "gca")
    },
    "l2_sp_attention": (
        lambda source, taps: {"regularizers": [_feature_map("l2_sp_attention", source, taps)]},
        "l2_sp",
        1.10,
    ),
    # DTNH on a feature-map term: one more backward pass from the shared forward (<= 1.7).
    **{
        f"dtnh_{name}": (
            lambda source, taps, name=name: {
                "regularizers": [_feature_map(name, source, taps)],
                "gradient_rule": keras_tl.gradients.DTNH(),
            },
            name,
            1.7,
        )
        for name in ("delta", "distillation")
    },
}


class _StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Reading a log value waits for the (asynchronously dispatched) step to finish.
        float(np.asarray(logs["loss"]))
        self.times.append(time.perf_counter() - self._start)


def build_model(name, source, taps):
    if CASES[name][0] is None:  # plain Keras: the source's features, a new Dense head
        features = source.layers[-1].input
        model = keras.Model(source.inputs, keras.layers.Dense(NUM_CLASSES, name="head")(features))
    else:
        model = keras_tl.TransferModel(
            source, NUM_CLASSES, taps=taps, source_head=True, **CASES[name][0](source, taps)
        )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def time_case(model, x, y, batch_size, steps):
    timer = _StepTimer()
    model.fit(
        x[: batch_size * steps],
        y[: batch_size * steps],
        batch_size=batch_size,
        epochs=1,
        verbose=0,
        callbacks=[timer],
        shuffle=False,
    )
    return timer.times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
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
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; expected names from {list(CASES)}")
    pending = list(names)
    while pending:  # a ratio needs its baseline measured too, and that one its own
        baseline = CASES[pending.pop()][1]
        if baseline and baseline not in names:
            names.insert(0, baseline)
            pending.append(baseline)

    keras.config.set_dtype_policy(args.policy)
    keras.utils.set_random_seed(0)
    size = args.image_size or keras_tl.backbones.default_input_shape(args.backbone)[0]
    input_shape = (size, size, 3)
    source = keras_tl.backbones.build(
        args.backbone, input_shape=input_shape, include_top=True, classes=SOURCE_CLASSES
    )
    taps = keras_tl.backbones.default_taps(args.backbone)
    rng = np.random.default_rng(0)
    n = args.batch_size * max(args.steps, args.warmup)
    x = rng.uniform(-1, 1, (n,) + input_shape).astype("float32")
    y = rng.integers(0, NUM_CLASSES, n).astype("int32")

    models = {}
    for name in names:
        models[name] = build_model(name, source, taps)
        time_case(models[name], x, y, args.batch_size, args.warmup)  # compile + warm caches
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name] += time_case(models[name], x, y, args.batch_size, args.steps)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} input={input_shape} batch={args.batch_size} "
        f"policy={args.policy} steps={args.steps}x{args.rounds} rounds"
    )
    print(f"{'case':<22}{'median ms':>10}{'images/s':>10}  {'ratio':>16}  target")
    results = {}
    for name in names:
        _, baseline, target = CASES[name]
        ratio = medians[name] / medians[baseline] if baseline else None
        ratio_text = f"{ratio:.3f} vs {baseline}" if baseline else "-"
        verdict = "" if target is None else f"<= {target} {'met' if ratio <= target else 'NOT met'}"
        images_per_second = args.batch_size / medians[name]
        print(
            f"{name:<22}{medians[name] * 1e3:>10.1f}{images_per_second:>10.1f}  {ratio_text:>16}  {verdict}"
        )
        results[name] = {
            "median_s": medians[name],
            "images_per_s": images_per_second,
            "baseline": baseline,
            "ratio": ratio,
            "target": target,
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"backend": keras.backend.backend(), "args": vars(args), "results": results}, f, indent=2
            )
    return results


if __name__ == "__main__":
    main()
