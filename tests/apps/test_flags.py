"""Flag validation of the apps: each bad value fails at parsing with a message naming the flag."""

import re

import pytest
from absl import flags

from apps import common, evaluate, export, finetune, method_flags, pretrain
from keras_tl import methods


def parse(app, *args):
    return common.parse(app.FLAGS, ["prog", *args])


@pytest.mark.parametrize(
    "app, args, message",
    [
        (
            finetune,
            ["--method=l2,magic"],
            r"flag --method=.*Unknown method\(s\) \['magic'\]. Expected a comma-separated "
            r"list of " + re.escape(str(sorted(methods.names()))),
        ),
        (finetune, ["--method="], r"flag --method=.*Unknown method"),
        (
            finetune,
            ["--hparams=gamma=1"],
            r"--hparams: Unknown hyperparameter\(s\) \['gamma'\] .* Expected keys from",
        ),
        (
            finetune,
            ["--method=l2", "--hparams=alpha=1"],
            r"Unknown hyperparameter\(s\) \['alpha'\] for methods \['l2'\]",
        ),
        (finetune, ["--hparams=alpha"], r"Expected --hparams entries 'name=value'. Received: 'alpha'"),
        (
            finetune,
            ["--per_class=5", "--fraction=0.5"],
            r"Expected at most one of --per_class and --fraction",
        ),
        (finetune, ["--fraction=1.5"], r"flag --fraction=1.5: 1.5 is not a number in the range \[0.0, 1.0\]"),
        (finetune, ["--repeats=0"], r"flag --repeats=0: 0 is not a positive integer"),
        (
            finetune,
            ["--dataset=imagenet"],
            r"flag --dataset=imagenet: Expected a data-set spec 'tfds:<name>', "
            r"'folder:<path>', 'tfrecord:<glob or dir>' or 'digits'",
        ),
        (
            finetune,
            ["--preprocess=vgg"],
            r"flag --preprocess=vgg: Expected --preprocess to be empty or one of \['identity'",
        ),
        (
            finetune,
            ["--source_backbone=resnet50"],
            r"flag --source_backbone=resnet50: value should be one of "
            r"<cifar_resnet.*\|cifar_resnet20\|",
        ),
        (finetune, ["--nosuchflag"], r"Unknown command line flag 'nosuchflag'"),
        (pretrain, ["--backbone=vgg16"], r"flag --backbone=vgg16: value should be one of <resnet50\|"),
        (pretrain, ["--loss=hinge"], r"flag --loss=hinge: value should be one of <cross_entropy\|pgd>"),
        (pretrain, ["--output=source.h5"], r"flag --output=source.h5: Expected --output to end in '.keras'"),
        (
            pretrain,
            ["--bn_momentum=1.5"],
            r"flag --bn_momentum=1.5: 1.5 is not a number in the range \[0.0, 0.999\]",
        ),
        (finetune, ["--lr=nan"], r"^flag --lr=nan: Expected --lr to be a finite number. Received: nan$"),
        (pretrain, ["--lr=inf"], r"^flag --lr=inf: Expected --lr to be a finite number. Received: inf$"),
        (
            finetune,
            ["--source_lr=inf"],
            r"^flag --source_lr=inf: Expected --source_lr to be a finite number. Received: inf$",
        ),
        (export, ["--resize_ratio=nan"], r"Expected --resize_ratio to be a finite number. Received: nan$"),
        (
            finetune,
            ["--hparams=alpha=abc"],
            r"hparams=\[.alpha=abc.\]: --hparams: Expected alpha to be a finite number \(e.g. the default 0.01 of l2_sp\). "
            r"Received: alpha='abc'$",
        ),
        (
            finetune,
            ["--method=bss", "--hparams=bss.k=1.5"],
            r": --hparams: Expected bss.k to be an integer \(e.g. the default 1 of bss\). Received: bss.k=1.5$",
        ),
        (
            finetune,
            ["--hparams=l2.beta=nan"],
            r"Expected l2.beta to be a finite number .* Received: l2.beta=nan$",
        ),
        (evaluate, ["--crops=center,side"], r"flag --crops=.*Expected --crops from \['center', 'ten'\]"),
        (export, ["--version=-1"], r"flag --version=-1: -1 is not a non-negative integer"),
    ],
)
def test_bad_flags_fail_naming_the_flag_and_allowed_values(app, args, message):
    with pytest.raises(flags.Error, match=message):
        parse(app, *args)


def test_defaults_parse_and_describe_the_embedded_demo():
    parse(finetune)
    fv = finetune.FLAGS
    assert fv.dataset == "digits" and fv.classes == [] and fv.source == ""
    assert fv.method == ["l2", "l2_fe", "l2_sp", "l2_sp+dtnh"]
    # An empty --classes means the demo's classes for digits only, and all classes elsewhere.
    assert common.class_list(fv.classes, "digits", finetune.DIGITS_CLASSES) == ["5", "6", "7", "8", "9"]
    assert common.class_list(fv.classes, "folder:x", finetune.DIGITS_CLASSES) is None
    assert common.class_list(["a"], "digits", finetune.DIGITS_CLASSES) == ["a"]


def test_flagfile_sets_flags_and_each_parse_starts_from_the_defaults(tmp_path):
    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--method=l2_sp\n--dtnh\n--hparams=alpha=0.1,l2_sp.beta=0.001\n--repeats=3\n")
    parse(finetune, f"--flagfile={flagfile}")
    fv = finetune.FLAGS
    assert fv.method == ["l2_sp"] and fv.dtnh and fv.repeats == 3
    assert method_flags.parse_hparams(fv.hparams) == {"alpha": 0.1, "l2_sp.beta": 0.001}
    parse(finetune)
    assert finetune.FLAGS.repeats == 1 and not finetune.FLAGS.dtnh


def test_each_app_has_its_own_flags():
    # Two apps in one process define --dataset each without colliding in absl's global FLAGS.
    assert "dataset" in pretrain.FLAGS and "dataset" in finetune.FLAGS
    assert "dataset" not in flags.FLAGS


def test_method_flags_build_each_method_with_hparams():
    (reg,) = method_flags.method_for("l2_sp", False, {"alpha": 0.5, "l2.beta": 9.0}).setup().regularizers
    assert (reg.alpha, reg.beta) == (0.5, 0.01)
    fe = method_flags.method_for("l2_fe", False, {"beta": 0.2}).setup()
    assert fe.freeze_backbone and fe.regularizers[0].scope == "head" and fe.regularizers[0].beta == 0.2
    assert method_flags.method_for("l2_sp+dtnh", False, {}).dtnh and method_flags.method_for("l2", True, {}).dtnh
    lwf = method_flags.method_for("lwf", False, {"lam": 0.5}).setup()
    assert lwf.keep_source_head and [type(r).__name__ for r in lwf.regularizers] == ["L2", "LwF"]
    assert method_flags.method_for("bss", False, method_flags.parse_hparams(["k=2"])).setup().regularizers[1].k == 2
    parsed = method_flags.parse_hparams(["attention=False", "x=true", "y=no"])
    assert parsed == {"attention": False, "x": True, "y": "no"}
    delta = method_flags.method_for("delta", False, method_flags.parse_hparams(["attention=false"]))
    term, head = delta.setup().regularizers  # DELTA (w/o ATT) needs no data: nothing measured
    assert term.uniform and type(head).__name__ == "L2"
    method_flags.check_hparams(["delta", "di2"], {"delta.head_epochs": 1, "lam": 0.01, "extra": 2})
    with pytest.raises(ValueError, match="Unknown hyperparameter"):
        method_flags.check_hparams(["knowdist"], {"lam": 1.0})
    with pytest.raises(ValueError, match=r"Expected extra to be an integer"):
        method_flags.check_hparams(["delta", "di2"], {"extra": 1.5})


def test_fraction_alone_parses():
    parse(finetune, "--fraction=0.5")
    assert finetune.FLAGS.fraction == 0.5 and finetune.FLAGS.per_class == 0
