"""`keras_tl.methods` + `keras_tl.fine_tune`: the README's example, and the same weights as apps.finetune."""

import os
import re

import keras
import numpy as np
import pytest

import keras_tl
from apps import common, finetune

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


@pytest.fixture(scope="module")
def source_path(tmp_path_factory):
    keras.utils.set_random_seed(0)
    source = keras_tl.backbones.build("cifar_resnet8", input_shape=(8, 8, 3), include_top=True, classes=5)
    path = str(tmp_path_factory.mktemp("source") / "source.keras")
    source.save(path)
    return path


def readme_example():
    text = open(README).read()
    section = text[text.index("## Use it from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_reproduces_a_benchmark_row_in_at_most_15_lines(source_path, tmp_path, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 15
    tiny = {  # the same code on tiny data: a small source, three digit classes, one short epoch
        "saved_models/sources/tin32_cifar_resnet20_cross_entropy_e10_b128_lr0.1_s0.keras": source_path,
        "folder:../shared/data/dtd10": "digits",
        '"train", seed=0,': '"train", seed=0, classes=["5", "6", "7"], per_class=8,',
        '"test", **data': '"test", classes=["5", "6", "7"], **data',
        "image_size=32": "image_size=8",
        'keras_tl.methods.get("delta")': 'keras_tl.methods.get("delta", head_epochs=1, num_batches=1)',
        "epochs=20": "epochs=1",
        '"runs/delta': f'"{tmp_path}/delta',
    }
    for old, new in tiny.items():
        assert old in code, old
        code = code.replace(old, new)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "'top1':" in printed and "'mean_per_class':" in printed
    assert os.path.exists(tmp_path / "delta" / "delta_channel_weights.json")  # cache_dir was used


def test_apps_finetune_and_the_python_api_give_bitwise_identical_weights(source_path, tmp_path):
    common.parse(
        finetune.FLAGS,
        [
            "prog",
            f"--source={source_path}",
            "--dataset=digits",
            "--classes=5,6,7",
            "--per_class=8",
            "--image_size=8",
            "--batch_size=8",
            "--epochs=2",
            "--lr=0.01",
            "--method=delta+dtnh",
            "--hparams=head_epochs=1,num_batches=1",
            "--validation_freq=0",
            "--noten_crop",
            "--noexport",
            "--verbose=0",
            f"--output_dir={tmp_path}/app",
        ],
    )
    finetune.run(finetune.FinetuneConfig.from_flags(finetune.FLAGS))
    app_model = keras.models.load_model(str(tmp_path / "app" / "best_model.keras"))

    data = dict(image_size=8, preprocess="cifar_resnet8", batch_size=8, classes=["5", "6", "7"], flip=False)
    keras.utils.set_random_seed(0)
    train = keras_tl.data.load("digits", "train", seed=0, per_class=8, drop_remainder=True, **data)
    source = keras_tl.models.load_model(source_path)
    method = keras_tl.methods.get("delta+dtnh", head_epochs=1, num_batches=1)
    model, _ = keras_tl.fine_tune(method, source, train, epochs=2, lr=0.01, seed=0, cache_dir=str(tmp_path / "api"), verbose=0)

    served = model.inference_model()  # what the app saves as best_model.keras
    ours = [keras.ops.convert_to_numpy(v) for v in served.weights]
    theirs = [keras.ops.convert_to_numpy(v) for v in app_model.weights]
    assert len(ours) == len(theirs) == 47
    assert len(model.weights) > len(served.weights)  # the frozen source copy was there too
    for a, b, v in zip(ours, theirs, served.weights, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=v.path)


def test_methods_are_listed_and_validated():
    assert keras_tl.methods.names()[:3] == ["l2", "l2_fe", "l2_sp"] and "delta" in keras_tl.methods.names()
    method = keras_tl.methods.get("l2_sp+dtnh", alpha=np.float32(0.1))
    assert method.dtnh and method.label == "l2_sp+dtnh" and method.hparams == {"alpha": np.float32(0.1)}
    with pytest.raises(ValueError, match=r"Expected a method from \['l2', .*Received: name='l3'"):
        keras_tl.methods.get("l3")
    with pytest.raises(ValueError, match=r"Expected hyperparameters of 'l2_sp' from \['alpha', 'beta'\]"):
        keras_tl.methods.get("l2_sp", lam=1.0)
    with pytest.raises(ValueError, match=r"Expected k to be an integer"):
        keras_tl.methods.get("bss", k=1.5)
    with pytest.raises(ValueError, match=r"Expected attention to be True or False .* Received: attention=0"):
        keras_tl.methods.get("delta", attention=0)
