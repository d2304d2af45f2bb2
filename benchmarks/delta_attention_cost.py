"""Cost of DELTA's channel attention (Alg. 1): batched ablation versus the per-channel loop.

    KERAS_BACKEND=tensorflow python benchmarks/delta_attention_cost.py
    KERAS_BACKEND=jax python benchmarks/delta_attention_cost.py --chunk_size=64

On the L2-FE model of a CIFAR ResNet-20 source at 32x32 (default taps: 16 + 32 + 64
channels), both methods score every channel over `--batches` batches of `--batch_size`, as
the reference code does with 4 batches of 64. The loop needs 1 + ΣC = 113 full forward
passes per batch; the batched ablation 1 prefix pass plus ceil(C / chunk_size) suffix passes
per tap. Target: >= 20x fewer forward passes. Each method first runs once on one batch
(tracing and compilation), then is timed; the results must agree (max |difference|).
"""

import argparse
import time

import keras
import numpy as np

import keras_tl
from keras_tl.attention import channel_importance, channel_importance_loop

BACKBONE = "cifar_resnet20"
INPUT_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
TARGET_RATIO = 20.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--chunk_size", type=int, default=32)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    source = keras_tl.backbones.build(BACKBONE, input_shape=INPUT_SHAPE, include_top=True, classes=20)
    model = keras_tl.TransferModel(
        source, NUM_CLASSES, taps=keras_tl.backbones.default_taps(BACKBONE), freeze_backbone=True
    )
    rng = np.random.default_rng(0)
    batches = [
        (
            rng.uniform(-1, 1, (args.batch_size,) + INPUT_SHAPE).astype("float32"),
            rng.integers(0, NUM_CLASSES, args.batch_size).astype("int32"),
        )
        for _ in range(args.batches)
    ]

    def batched(data):
        return channel_importance(model, data, chunk_size=args.chunk_size, return_stats=True)

    def loop(data):
        return channel_importance_loop(model, data, return_stats=True)

    results = {}
    for name, run in (("batched", batched), ("per-channel loop", loop)):
        run(batches[:1])  # trace / compile
        start = time.perf_counter()
        importance, stats = run(batches)
        results[name] = (importance, stats, time.perf_counter() - start)

    (fast, fast_stats, fast_s), (slow, slow_stats, slow_s) = results["batched"], results["per-channel loop"]
    difference = max(float(np.max(np.abs(np.subtract(fast[k], slow[k])))) for k in fast)
    largest = max(float(np.max(np.abs(slow[k]))) for k in slow)
    channels = {k: len(v) for k, v in fast.items()}
    print(
        f"backend={keras.backend.backend()} backbone={BACKBONE} input={INPUT_SHAPE} taps={channels} "
        f"batches={args.batches}x{args.batch_size} chunk_size={args.chunk_size}"
    )
    print(f"{'method':<18}{'forward passes':>15}{'seconds':>10}")
    for name, (_, stats, seconds) in results.items():
        print(f"{name:<18}{stats['forward_passes']:>15}{seconds:>10.2f}")
    ratio = slow_stats["forward_passes"] / fast_stats["forward_passes"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"forward passes: {ratio:.1f}x fewer (target >= {TARGET_RATIO:.0f}x: {verdict}); "
        f"time: {slow_s / fast_s:.1f}x faster; max |batched - loop| = {difference:.2e} "
        f"(largest |loss increase| {largest:.2e})"
    )
    return {"pass_ratio": ratio, "time_ratio": slow_s / fast_s, "max_abs_difference": difference}


if __name__ == "__main__":
    main()
