"""The pretrain app's upstream losses: PGD with a WordNet prior read from a classes.tsv."""

import dataclasses
import types

import numpy as np
import pytest

from apps import pretrain
from keras_tl import pretraining
from keras_tl.losses import PriorGuidedDiffusion
from tests.semantic.test_wordnet import write_mini_wordnet


def write_classes_tsv(path, wnids):
    with open(path, "w") as f:
        f.write("label\twnid\tname\n")
        f.writelines(f"{label}\t{wnid}\tclass {label}\n" for label, wnid in enumerate(wnids))


def test_pgd_neighbours_come_from_wordnet(tmp_path):
    ids = write_mini_wordnet(str(tmp_path))
    wnids = [ids["dog"], ids["entity"], ids["cat"], ids["pet"]]
    loss = pretraining.LOSSES["pgd"](
        types.SimpleNamespace(num_classes=4),
        wnids=wnids,
        tau=10.0,
        num_neighbours=1,
        wordnet_path=str(tmp_path),
    )
    assert isinstance(loss, PriorGuidedDiffusion) and loss.tau == 10.0
    # Wu-Palmer along the path through the common subsumer: dog-pet 2·2/(3+2) > dog-cat 2·3/(4+4).
    assert loss.neighbours[0] == [3] and loss.neighbours[2] == [0]
    # At zero logits, a dog's own logit and pet's are shifted by −log τ, entity's and cat's are not.
    tau = 10.0
    expected = np.log1p(tau) + np.log1p(1 / tau) + 2 * np.log(2.0)
    assert float(loss(np.array([0]), np.zeros((1, 4), "float32"))) == pytest.approx(expected, rel=1e-5)


def test_pgd_needs_one_wnid_per_class():
    with pytest.raises(
        ValueError, match=r"Expected one WordNet id per upstream class \(3\).*Received: 2 ids"
    ):
        pretraining.LOSSES["pgd"](types.SimpleNamespace(num_classes=3), wnids=["n1", "n2"])


def test_app_reads_the_wnid_column(tmp_path):
    write_classes_tsv(tmp_path / "classes.tsv", ["n00000001", "n00000002"])
    config = pretrain.PretrainConfig(loss="pgd", wnids=str(tmp_path / "classes.tsv"), pgd_tau=50.0, pgd_neighbours=1)
    assert pretrain.loss_options(config) == {
        "wnids": ["n00000001", "n00000002"],
        "tau": 50.0,
        "num_neighbours": 1,
    }
    with pytest.raises(ValueError, match=r"Expected --wnids .* for --loss=pgd. Received: ''"):
        pretrain.loss_options(pretrain.PretrainConfig(loss="pgd"))
    assert pretrain.loss_options(dataclasses.replace(config, loss="cross_entropy")) == {}
