"""Tiny-ImageNet-200's classes in two halves (Yosinski et al. 2014): A for the source, B for the target.

    python -m benchmarks.tin_split      # (re)writes benchmarks/data/tin_class_split.tsv

The split is a seeded permutation of the 200 labels (numpy's `default_rng(0)`): its first 100
labels, sorted, are half A, the other 100 half B. The committed TSV is the reference (label,
wnid, name, half); `halves()` reads it, so a change of numpy's generator cannot move a class.
"""

import csv
import os

import numpy as np

from keras_tl.data import tfrecord

HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT_FILE = os.path.join(HERE, "data", "tin_class_split.tsv")
SEED = 0
HALVES = ("A", "B")


def make_split(num_classes=200, seed=SEED):
    """`{label: "A" or "B"}`: the first half of a seeded permutation is A."""
    order = np.random.default_rng(seed).permutation(num_classes)
    a = set(int(label) for label in order[: num_classes // 2])
    return {label: "A" if label in a else "B" for label in range(num_classes)}


def halves(path=SPLIT_FILE):
    """`{"A": [labels], "B": [labels]}` from the committed file, each sorted."""
    result = {half: [] for half in HALVES}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            result[row["half"]].append(int(row["label"]))
    return {half: sorted(labels) for half, labels in result.items()}


def main():
    data_dir = os.path.join(HERE, "..", "..", "shared", "data", "tiny-imagenet-32")
    ids = tfrecord.read_class_names(os.path.join(data_dir, "classes.tsv"), column="wnid")
    names = tfrecord.read_class_names(os.path.join(data_dir, "classes.tsv"), column="name")
    split = make_split(len(ids))
    os.makedirs(os.path.dirname(SPLIT_FILE), exist_ok=True)
    with open(SPLIT_FILE, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["label", "wnid", "name", "half"])
        for label, half in split.items():
            writer.writerow([label, ids[label], names[label], half])
    print(f"Wrote {SPLIT_FILE}: {sum(h == 'A' for h in split.values())} classes in A")


if __name__ == "__main__":
    main()
