"""Step-time overhead of each regularizer / gradient rule relative to plain fine-tuning.

Run once per backend; every number is a ratio of median step times measured in this one
process (absolute times depend on the machine):

    KERAS_BACKEND=tensorflow python benchmarks/step_overhead.py
    KERAS_BACKEND=jax python benchmarks/step_overhead.py --cases=plain,l2_sp,dtnh_l2_sp

Each case builds a `TransferModel` on a CIFAR ResNet-20 source at 32x32, batch 64, and
trains `--steps` steps with `fit` after `--warmup` steps; cases run in interleaved rounds so
that machine drift affects all alike. A case's ratio is printed against its `baseline`.
"""

import argparse
import json
import statistics
import time

import keras
import numpy as np

import keras_tl

BACKBONE = "cifar_resnet20"
INPUT_SHAPE = (32, 32, 3)
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


def _feature_map(name):
    """Feature-map terms on the backbone's default taps; DELTA with uniform channel weights."""
    r = keras_tl.regularizers
    taps = keras_tl.backbones.default_taps(BACKBONE)
    weights = {tap: [1.0] * channels for tap, channels in zip(taps, (16, 32, 64), strict=True)}
    return {
        "distillation": lambda: r.FeatureMapDistillation(alpha=0.01),
        "delta": lambda: r.DELTA(alpha=0.01, channel_weights=weights),
        "l2_sp_attention": lambda: r.L2SPAttention(alpha=0.01, beta=0.01, channel_weights=weights),
        "ast": lambda: r.AST(alpha=0.01),
        "act": lambda: r.ACT(alpha=0.01),
        "spa": lambda: r.SPA(alpha=0.01),
        "gca": lambda: r.GCA(alpha=0.01),
    }[name]()


# name -> (builder of TransferModel kwargs, baseline case name, target ratio or None)
CASES = {
    "plain": (lambda: {}, None, None),
    "l2_sp": (lambda: {"regularizers": [_l2_sp()]}, "plain", 1.05),
    "dtnh_l2_sp": (
        lambda: {"regularizers": [_l2_sp()], "gradient_rule": keras_tl.gradients.DTNH()},
        "l2_sp",
        1.10,
    ),
    # Head-only terms (<= 1.15); LwF needs the frozen source forward pass (<= 1.35).
    "bss": (lambda: {"regularizers": [_output_level("bss")]}, "plain", 1.15),
    "co_tuning": (lambda: {"regularizers": [_output_level("co_tuning")]}, "plain", 1.15),
    "di2": (lambda: {"regularizers": [_output_level("di2")]}, "plain", 1.15),
    "lwf": (lambda: {"regularizers": [_output_level("lwf")]}, "plain", 1.35),
    # Feature-map terms: one frozen source forward pass more than plain fine-tuning (<= 1.35).
    **{
        name: (lambda name=name: {"regularizers": [_feature_map(name)]}, "plain", 1.35)
        for name in ("distillation", "delta", "ast", "act", "spa", "gca")
    },
    "l2_sp_attention": (lambda: {"regularizers": [_feature_map("l2_sp_attention")]}, "l2_sp", 1.10),
    # DTNH on a feature-map term: one more backward pass from the shared forward (<= 1.7).
    "dtnh_delta": (
        lambda: {"regularizers": [_feature_map("delta")], "gradient_rule": keras_tl.gradients.DTNH()},
        "delta",
        1.7,
    ),
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


def build_model(kwargs, source):
    model = keras_tl.TransferModel(
        source, NUM_CLASSES, taps=keras_tl.backbones.default_taps(BACKBONE), source_head=True, **kwargs
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def time_case(model, x, y, batch_size, steps):
    timer = _StepTimer()
    model.fit(x[: batch_size * steps], y[: batch_size * steps], batch_size=batch_size, epochs=1, verbose=0,
              callbacks=[timer], shuffle=False)
    return timer.times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {list(CASES)}")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    names = [n for n in args.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; expected names from {list(CASES)}")
    for name in list(names):  # a ratio needs its baseline measured too
        baseline = CASES[name][1]
        if baseline and baseline not in names:
            names.insert(0, baseline)

    keras.utils.set_random_seed(0)
    source = keras_tl.backbones.build(BACKBONE, input_shape=INPUT_SHAPE, include_top=True, classes=SOURCE_CLASSES)
    rng = np.random.default_rng(0)
    n = args.batch_size * max(args.steps, args.warmup)
    x = rng.uniform(-1, 1, (n,) + INPUT_SHAPE).astype("float32")
    y = rng.integers(0, NUM_CLASSES, n).astype("int32")

    models = {}
    for name in names:
        models[name] = build_model(CASES[name][0](), source)
        time_case(models[name], x, y, args.batch_size, args.warmup)  # compile + warm caches
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name] += time_case(models[name], x, y, args.batch_size, args.steps)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"backend={keras.backend.backend()} backbone={BACKBONE} input={INPUT_SHAPE} batch={args.batch_size} "
          f"steps={args.steps}x{args.rounds} rounds")
    print(f"{'case':<22}{'median ms':>10}  {'ratio':>16}  target")
    results = {}
    for name in names:
        _, baseline, target = CASES[name]
        ratio = medians[name] / medians[baseline] if baseline else None
        ratio_text = f"{ratio:.3f} vs {baseline}" if baseline else "-"
        verdict = "" if target is None else f"<= {target} {'met' if ratio <= target else 'NOT met'}"
        print(f"{name:<22}{medians[name] * 1e3:>10.1f}  {ratio_text:>16}  {verdict}")
        results[name] = {"median_s": medians[name], "baseline": baseline, "ratio": ratio, "target": target}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": keras.backend.backend(), "results": results}, f, indent=2)
    return results


if __name__ == "__main__":
    main()
