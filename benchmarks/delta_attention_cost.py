"""Cost of DELTA's channel attention (Alg. 1): batched ablation, and the per-channel loop where it is affordable.

    KERAS_BACKEND=tensorflow python benchmarks/delta_attention_cost.py
    KERAS_BACKEND=jax python benchmarks/delta_attention_cost.py --chunk_size=64
    KERAS_BACKEND=tensorflow nice -n 10 python benchmarks/delta_attention_cost.py \\
        --backbone=resnet50 --image_size=224 --batch_size=8 --batches=2

CIFAR ResNet-20 at 32x32 (default): both methods score every channel over `--batches`
batches of `--batch_size`, as the reference code does with 4 batches of 64. The loop needs
1 + ΣC = 113 full forward passes per batch; the batched ablation 1 prefix pass plus
ceil(C / k) suffix passes per tap (k channels per pass). Target: >= 20x fewer forward
passes; the results must agree (max |difference|).

ImageNet backbones (`--backbone=resnet50 --image_size=224`, random weights: the cost does not
depend on them): the batched ablation only (the loop would take 1 + 3,840 full passes per
batch), with its default taps. Reported: passes (prefix, suffix per tap), wall time, and the
peak resident memory of the channel-weight computation above the model's own (RSS after
building the models and one warm-up pass on one batch, then the kernel's peak counter is
reset via /proc/self/clear_refs; Linux only). Target: <= 4 GB above the model's own.

Measured (TensorFlow, 2 shared CPU cores, nice'd, other jobs running; 2 batches of 8):
298 forward passes (2 prefix + 296 suffix: conv2 52, conv3 52, conv4 64, conv5 128) in
906 s (conv2 288 s, conv3 340 s, conv4 250 s, conv5 26 s); RSS 1.05 GB after building
the model, peak 3.29 GB during the channel weights: +2.24 GB (target met).
"""

import argparse
import logging
import time

import keras
import numpy as np

import keras_tl
from keras_tl.channel_weights import channel_importance, channel_importance_loop

NUM_CLASSES = 10
TARGET_RATIO = 20.0
TARGET_EXTRA_RSS_GB = 4.0


def rss_gb(field):
    """`VmRSS` (current) or `VmHWM` (peak since the last reset) of this process, in GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024**2
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss():
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def build_model(backbone, image_size):
    input_shape = (image_size, image_size, 3)
    source = keras_tl.backbones.build(backbone, input_shape=input_shape, include_top=True, classes=20)
    taps = keras_tl.backbones.default_taps(backbone)
    return keras_tl.TransferModel(source, NUM_CLASSES, taps=taps, freeze_backbone=True), input_shape


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="cifar_resnet20")
    parser.add_argument("--image_size", type=int, default=None)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--chunk_size", type=int, default=32)
    parser.add_argument("--max_pass_mb", type=float, default=512)
    parser.add_argument("--loop", choices=("auto", "yes", "no"), default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    keras.utils.set_random_seed(0)
    image_size = args.image_size or keras_tl.backbones.default_input_shape(args.backbone)[0]
    model, input_shape = build_model(args.backbone, image_size)
    rng = np.random.default_rng(0)
    batches = [
        (
            rng.uniform(-1, 1, (args.batch_size,) + input_shape).astype("float32"),
            rng.integers(0, NUM_CLASSES, args.batch_size).astype("int32"),
        )
        for _ in range(args.batches)
    ]
    with_loop = args.loop == "yes" or (args.loop == "auto" and args.backbone.startswith("cifar"))

    def batched(data, verbose=1):
        return channel_importance(
            model,
            data,
            chunk_size=args.chunk_size,
            max_pass_mb=args.max_pass_mb,
            return_stats=True,
            verbose=verbose,
        )

    def loop(data, verbose=0):
        return channel_importance_loop(model, data, return_stats=True)

    # Warm-up on one example: builds the prefix/suffix models and traces them (their compiled
    # shapes differ from the timed run's, so part of the tracing is still inside the timing).
    model.predict_on_batch(batches[0][0][:1])
    baseline_rss = rss_gb("VmRSS")
    reset_peak_rss()

    results = {}
    for name, run in (("batched", batched), ("per-channel loop", loop)):
        if name == "per-channel loop" and not with_loop:
            continue
        start = time.perf_counter()
        importance, stats = run(batches)
        results[name] = (importance, stats, time.perf_counter() - start)
        if name == "batched":
            peak_rss = rss_gb("VmHWM")

    fast, fast_stats, fast_s = results["batched"]
    channels = {k: len(v) for k, v in fast.items()}
    print(
        f"backend={keras.backend.backend()} backbone={args.backbone} input={input_shape} taps={channels} "
        f"batches={args.batches}x{args.batch_size} chunk_size={args.chunk_size} "
        f"max_pass_mb={args.max_pass_mb:g}"
    )
    print(f"{'method':<18}{'forward passes':>15}{'seconds':>10}")
    for name, (_, stats, seconds) in results.items():
        print(f"{name:<18}{stats['forward_passes']:>15}{seconds:>10.1f}")
    for tap, cost in fast_stats["taps"].items():
        print(f"  {tap:<24}{cost['mode']:<12}{cost['passes']:>6} passes{cost['seconds']:>9.1f} s")
    extra = peak_rss - baseline_rss
    verdict = "met" if extra <= TARGET_EXTRA_RSS_GB else "NOT met"
    print(
        f"RSS: model {baseline_rss:.2f} GB, peak during the channel weights {peak_rss:.2f} GB, "
        f"+{extra:.2f} GB (target <= {TARGET_EXTRA_RSS_GB:.0f} GB: {verdict})"
    )
    report = {"passes": fast_stats["forward_passes"], "seconds": fast_s, "extra_rss_gb": extra}
    if with_loop:
        slow, slow_stats, slow_s = results["per-channel loop"]
        difference = max(float(np.max(np.abs(np.subtract(fast[k], slow[k])))) for k in fast)
        largest = max(float(np.max(np.abs(slow[k]))) for k in slow)
        ratio = slow_stats["forward_passes"] / fast_stats["forward_passes"]
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(
            f"forward passes: {ratio:.1f}x fewer (target >= {TARGET_RATIO:.0f}x: {verdict}); "
            f"time: {slow_s / fast_s:.1f}x faster; max |batched - loop| = {difference:.2e} "
            f"(largest |loss increase| {largest:.2e})"
        )
        report.update(pass_ratio=ratio, time_ratio=slow_s / fast_s, max_abs_difference=difference)
    return report


if __name__ == "__main__":
    main()
