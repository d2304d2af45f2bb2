"""The apps' --dtype_policy, --jit_compile and --augment, custom sources' --preprocess, single-run tables."""

import keras
import numpy as np
import pytest

import keras_tl
from apps import common, finetune, pretrain, reporting
from keras_tl import fine_tuning, models
from tests.apps.helpers import tiny_finetune, to_argv


def parse(app, config_class, *args):
    common.parse(app.FLAGS, ["prog", *args])
    return config_class.from_flags(app.FLAGS)


def test_the_flags_parse_into_the_configs_and_back():
    args = ["--dtype_policy=mixed_bfloat16", "--nojit_compile", "--augment=randaugment+mixup"]
    config = parse(finetune, finetune.FinetuneConfig, *args)
    assert (config.dtype_policy, config.jit_compile, config.augment) == ("mixed_bfloat16", False, "randaugment+mixup")
    assert parse(finetune, finetune.FinetuneConfig, *to_argv(config)[1:]) == config
    assert common.jit_compile(config) is False and common.jit_compile(finetune.FinetuneConfig()) == "auto"
    config = parse(pretrain, pretrain.PretrainConfig, "--dtype_policy=mixed_float16", "--jit_compile")
    assert (config.dtype_policy, config.jit_compile) == ("mixed_float16", True)
    with pytest.raises(Exception, match=r"flag --dtype_policy=float16: value should be one of <float32\|mixed_float16"):
        parse(finetune, finetune.FinetuneConfig, "--dtype_policy=float16")


def custom_source(path, card=None):
    """A functional source whose name is no backbone: without a card nothing says how to preprocess."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="predictions")(x), name="my_net")
    if card is None:
        model.save(str(path))
    else:
        models.save_model(model, str(path), card)
    return str(path)


def all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def test_finetune_runs_under_the_policy_with_the_jit_setting_and_restores_the_policy(tmp_path, monkeypatch):
    seen = []
    fine_tune = fine_tuning.fine_tune

    def recording(*args, **kwargs):
        model, history = fine_tune(*args, **kwargs)
        seen.append((kwargs["jit_compile"], model.jit_compile, keras.config.dtype_policy().name))
        return model, history

    monkeypatch.setattr(fine_tuning, "fine_tune", recording)
    source = custom_source(tmp_path / "source.keras")
    config = tiny_finetune(
        source, tmp_path / "run", method=("l2_sp",), preprocess="identity", dtype_policy="mixed_bfloat16", jit_compile=False
    )
    finetune.run(config)
    assert seen == [(False, False, "mixed_bfloat16")]
    assert keras.config.dtype_policy().name == "float32"  # the run left the global policy as it found it
    best = keras.saving.load_model(str(tmp_path / "run" / "best_model.keras"))
    dense = [layer for layer in all_layers(best) if isinstance(layer, keras.layers.Dense)]
    assert dense and all(layer.dtype_policy.name == "mixed_bfloat16" for layer in dense)


def test_pretrain_builds_under_the_policy_and_compiles_with_the_jit_setting(tmp_path):
    config = pretrain.PretrainConfig(
        backbone="cifar_resnet8", image_size=8, epochs=1, per_class=4, batch_size=8, eval_split="", augment="none",
        output_dir=str(tmp_path), dtype_policy="mixed_bfloat16", jit_compile=True,
    )
    model, history, _ = pretrain.run(config)
    assert model.jit_compile is True and np.isfinite(history["loss"]).all()
    conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert conv and {layer.compute_dtype for layer in conv} == {"bfloat16"}
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("preprocess", ["identity", "cifar_resnet8"])
def test_a_card_less_source_takes_preprocess(tmp_path, preprocess):
    source = custom_source(tmp_path / "source.keras")
    report = finetune.run(tiny_finetune(source, tmp_path / "run", method=("l2_sp",), preprocess=preprocess))
    assert np.isfinite(report["results"]["l2_sp"]["runs"][0]["history"]["loss"]).all()
    assert models.load_card(str(tmp_path / "run" / "best_model.keras"))["preprocess"] == preprocess


def test_a_card_less_source_without_preprocess_says_to_pass_it(tmp_path):
    source = custom_source(tmp_path / "source.keras")
    with pytest.raises(ValueError, match=r"no card names it, and 'my_net' is no backbone\). Expected preprocess \(apps: --preprocess\)"):
        finetune.run(tiny_finetune(source, tmp_path / "run", method=("l2_sp",)))


def test_identity_preprocessing_keeps_0_to_255_in_the_pipeline():
    split = keras_tl.data.load("digits", "test", image_size=8, preprocess="identity", classes=["5"], batch_size=4)
    raw = keras_tl.data.load("digits", "test", image_size=8, preprocess=None, classes=["5"], batch_size=4)
    images, raw_images = (next(iter(s.dataset.as_numpy_iterator()))[0] for s in (split, raw))
    np.testing.assert_array_equal(images, raw_images)
    assert images.max() > 100  # 0..255, not mapped


def test_a_single_run_shows_no_spread_and_several_runs_show_their_std():
    one = {"runs": [{"top1": 0.85}], "summary": reporting.summarize([{"top1": 0.85}])}
    runs = [{"top1": 0.8}, {"top1": 0.9}]
    two = {"runs": runs, "summary": reporting.summarize(runs)}
    lines = reporting.markdown_table({"l2": one, "l2_sp": two}).splitlines()
    assert lines[2] == "| l2 | 85.0 | 1 |"
    assert lines[3] == f"| l2_sp | 85.0 ± {100 * np.std([0.8, 0.9], ddof=1):.1f} | 2 |"
