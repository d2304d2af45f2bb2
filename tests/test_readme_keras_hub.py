"""The "Use it with keras-hub" example, run as written on a config-built backbone saved as a local preset."""

import os
import re

import pytest

from tests.backbones.hub_models import keras_hub, resnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the example lives (README.md's section links it).
EXAMPLE_FILE = os.path.join(ROOT, "docs", "KERAS_HUB.md")


def example():
    text = open(EXAMPLE_FILE).read()
    section = text[text.index("# Use it with keras-hub") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def preset_dir(tmp_path):
    """`resnet_18_imagenet` stand-in: a tiny ResNet and an ImageNet-normalising converter, saved as a preset."""
    folder = str(tmp_path / "tiny_resnet")
    resnet(seed=0).save_to_preset(folder)
    keras_hub.layers.ResNetImageConverter(
        image_size=(16, 16),
        scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)],
        offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
    ).save_to_preset(folder)
    return folder


def test_the_keras_hub_example_runs_as_written(preset_dir, tmp_path, capsys):
    code = example()
    assert len(code.strip().splitlines()) <= 15
    tiny = {  # the same code offline and small: the local preset, three digit classes, one short epoch
        '"keras_hub:resnet_18_imagenet"': f'"keras_hub:{preset_dir}"',
        "folder:../shared/data/dtd10": "digits",
        '"train", seed=0,': '"train", seed=0, classes=["0", "1", "2"], per_class=8,',
        '"test", **data': '"test", classes=["0", "1", "2"], **data',
        "image_size=224": "image_size=16",
        "batch_size=32": "batch_size=8",
        'keras_tl.methods.get("delta+dtnh")': 'keras_tl.methods.get("delta+dtnh", head_epochs=1, num_batches=1)',
        "epochs=10": "epochs=1",
        '"runs/hub_delta': f'"{tmp_path}/hub_delta',
    }
    for old, new in tiny.items():
        assert old in code, old
        code = code.replace(old, new)
    exec(compile(code, EXAMPLE_FILE, "exec"), {})
    printed = capsys.readouterr().out
    assert "['stack0_block0_out', 'stack1_block0_out'] {'top1':" in printed
    assert os.path.isfile(tmp_path / "hub_delta" / "model.keras")
    assert os.path.isfile(tmp_path / "hub_delta" / "delta_channel_weights.json")
    assert os.path.isfile(tmp_path / "hub_delta" / "serving" / "dtd10" / "1" / "saved_model.pb")
