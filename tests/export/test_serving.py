"""SavedModel export on this backend: predictions, the bytes signature, layout, no overwrite."""

import os
import stat
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_tl
from keras_tl.backbones.cifar_resnet import cifar_resnet
from keras_tl.data import transforms
from keras_tl.export import BYTES_SIGNATURE, FLOAT_SIGNATURE, export_serving, next_version

SIZE = (8, 8)


def transfer_model():
    """A TransferModel with a frozen source copy (L2-SP) and non-trivial BatchNorm statistics."""
    keras.utils.set_random_seed(0)
    source = cifar_resnet(20, input_shape=SIZE + (3,), include_top=True, classes=4)
    rng = np.random.default_rng(0)
    for layer in source.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape))
    return keras_tl.TransferModel(source, num_classes=3, regularizers=[keras_tl.regularizers.L2SP()])


def keras_logits(model, images):
    return keras.ops.convert_to_numpy(model(np.asarray(images) / 127.5 - 1.0, training=False))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = transfer_model()
    base = str(tmp_path_factory.mktemp("saved_models"))
    path = export_serving(model, base, name="tiny", preprocess="cifar_resnet20")
    return model, base, path


def test_layout_is_tf_serving_s_and_leaves_no_staging_folder(exported):
    _, base, path = exported
    assert path == os.path.join(base, "tiny", "1")
    assert os.listdir(os.path.join(base, "tiny")) == ["1"]
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))


@pytest.mark.parametrize("batch", [1, 5])
def test_float_signature_matches_the_keras_model(exported, batch):
    model, _, path = exported
    images = np.random.default_rng(batch).uniform(0, 255, (batch,) + SIZE + (3,)).astype(np.float32)
    outputs = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE](images=tf.constant(images))
    expected = keras_logits(model, images)
    np.testing.assert_allclose(outputs["logits"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(
        outputs["probabilities"].numpy(), keras.ops.convert_to_numpy(keras.ops.softmax(expected)), atol=1e-5
    )


@pytest.mark.parametrize("batch", [1, 3])
def test_bytes_signature_equals_decode_then_predict(exported, batch):
    model, _, path = exported
    rng = np.random.default_rng(10 + batch)
    # Any size and format: each image is decoded, resized and center-cropped like evaluation.
    encoded = [
        tf.io.encode_png(rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)).numpy()
        if i % 2 == 0
        else tf.io.encode_jpeg(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).numpy()
        for i in range(batch)
    ]
    outputs = tf.saved_model.load(path).signatures[BYTES_SIGNATURE](image_bytes=tf.constant(encoded))
    decoded = np.stack([transforms.eval_transform(transforms.decode(e), SIZE).numpy() for e in encoded])
    np.testing.assert_allclose(outputs["logits"].numpy(), keras_logits(model, decoded), atol=1e-4)


def test_graph_holds_the_inference_model_only(exported):
    model, _, path = exported
    names = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]
    saved = [name for name in names if name.endswith(".ATTRIBUTES/VARIABLE_VALUE")]
    assert len(saved) == len(model.inference_model().weights)
    assert len(model.weights) > len(saved)  # the frozen source copy and regularizer variables stay out


def test_saved_model_cli_lists_both_signatures(exported):
    _, _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed beside this Python")
    result = subprocess.run(
        [cli, "show", "--dir", path, "--all"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"signature_def['{FLOAT_SIGNATURE}']" in result.stdout
    assert f"signature_def['{BYTES_SIGNATURE}']" in result.stdout
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING" in result.stdout
    assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT" in result.stdout


def test_versions_increment_and_are_never_overwritten(tmp_path):
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Flatten(), keras.layers.Dense(2)])
    first = export_serving(model, str(tmp_path), name="m", preprocess="identity")
    marker = os.path.join(first, "marker")
    open(marker, "w").close()
    with pytest.raises(FileExistsError, match="never overwrites"):
        export_serving(model, str(tmp_path), name="m", version=1, preprocess="identity")
    assert os.path.exists(marker)
    assert export_serving(model, str(tmp_path), name="m", preprocess="identity").endswith(
        os.path.join("m", "2")
    )
    assert export_serving(model, str(tmp_path), name="m", version=7, preprocess="identity").endswith("7")
    assert next_version(str(tmp_path / "m")) == 8


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Flatten(), keras.layers.Dense(2)])

    def broken(images):
        raise RuntimeError("preprocessing failed")

    with pytest.raises(RuntimeError, match="preprocessing failed"):
        export_serving(model, str(tmp_path), name="m", preprocess=broken)
    assert not os.path.exists(tmp_path / "m") or os.listdir(tmp_path / "m") == []


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"name": ""}, ValueError, "Expected name to be a non-empty folder name"),
        (
            {"name": "m", "version": 0},
            ValueError,
            "Expected version to be a positive int or None. Received: version=0",
        ),
        ({"name": "m", "preprocess": 3}, ValueError, "Expected preprocess to be a backbone name"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, error, message):
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Dense(2)])
    kwargs.setdefault("preprocess", "identity")
    with pytest.raises(error, match=message):
        export_serving(model, str(tmp_path), **kwargs)


def test_exports_are_readable_by_other_users_and_stale_staging_folders_are_removed(tmp_path):
    model = keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    killed = model_dir / f".tmp-1-{int(finished.stdout)}-0a1b2c3d"  # its export process is gone
    legacy = model_dir / ".tmp-1-x7k2_q9z"  # tempfile.mkdtemp's name, two hours old
    running = model_dir / f".tmp-5-{os.getppid()}-0a1b2c3d"  # another export, still running
    for folder in (killed, legacy, running):
        folder.mkdir()
    os.utime(legacy, (time.time() - 7200,) * 2)
    umask = os.umask(0o022)
    try:
        path = export_serving(model, str(tmp_path), name="m", preprocess="identity")
    finally:
        os.umask(umask)
    modes = {
        os.path.relpath(os.path.join(root, name), path): stat.S_IMODE(
            os.stat(os.path.join(root, name)).st_mode
        )
        for root, dirs, names in os.walk(path)
        for name in dirs + names
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    assert modes["saved_model.pb"] == 0o644 and modes["variables"] == 0o755
    assert set(modes.values()) <= {0o755, 0o644}
    assert sorted(os.listdir(model_dir)) == [running.name, "1"]


def test_a_model_without_a_fixed_input_size_needs_image_size(tmp_path):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError) as info:
        export_serving(model, str(tmp_path), name="m", preprocess="identity")
    assert str(info.value) == (
        "Expected a model with a fixed input size, or image_size=(height, width) to export it at "
        "(apps.export: --image_size). Received: a model whose input shape is (None,) + (None, None, 3)"
    )
    path = export_serving(model, str(tmp_path), name="m", preprocess="identity", image_size=(8, 6))
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 6, 3)).astype(np.float32)
    outputs = tf.saved_model.load(path).signatures[FLOAT_SIGNATURE](images=tf.constant(images))
    np.testing.assert_allclose(
        outputs["logits"].numpy(), keras.ops.convert_to_numpy(model(images)), atol=1e-5
    )
    with pytest.raises(
        ValueError, match=r"Expected image_size to match the model's fixed input size \(8, 8\)"
    ):
        export_serving(
            keras.Sequential([keras.Input(SIZE + (3,)), keras.layers.Dense(2)]),
            str(tmp_path),
            name="m",
            preprocess="identity",
            image_size=(4, 4),
        )
