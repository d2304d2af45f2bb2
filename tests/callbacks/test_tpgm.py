"""`keras_tl.callbacks.TPGM` against a numpy restatement of PotatoTian/TPGM's `tpgm_trainer`, and under `fit`."""

import json

import keras
import numpy as np
import pytest

import keras_tl
from keras_tl.callbacks import TPGM
from keras_tl.utils.weights import named_variables
from tests.conftest import compile_sgd, tiny_data, tiny_source

BN_EPSILON = 1e-3  # Keras' BatchNormalization default


def mlp_source(seed=0):
    """Input(4) -> Dense(5) -> BatchNorm -> ReLU: small enough for a hand-written backward pass."""
    inputs = keras.Input((4,))
    z = keras.layers.Dense(5, name="dense")(inputs)
    z = keras.layers.BatchNormalization(name="bn")(z)
    outputs = keras.layers.Activation("relu", name="features")(z)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        low = 0.5 if "variance" in variable.name else -1.0
        variable.assign(rng.uniform(low, 1.5, variable.shape).astype("float32"))
    return model


# ---------------------------------------------------------------------- the oracle


def softmax(z):
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class ReferenceTPGM:
    """`tpgm_trainer` + `TPGM` of `DomainNet_ResNet_Exp/utils/tpgm.py`, in numpy, PyTorch layout.

    Parameters in `named_parameters` order: fc weight `(out, in)`, fc bias, bn weight, bn
    bias; the head is in `exclude_list`. `torch.optim.Adam(lr=proj_lr)` on the constraints.
    """

    def __init__(self, anchors, head, bn_stats, proj_lr, max_iters):
        self.anchors = [a.astype("float64") for a in anchors]
        self.head = [h.astype("float64") for h in head]
        self.mean, self.var = (s.astype("float64") for s in bn_stats)
        self.lr, self.max_iters = proj_lr, max_iters
        self.constraints = np.zeros(len(anchors))
        self.m, self.v, self.t = np.zeros(len(anchors)), np.zeros(len(anchors)), 0
        self.init = True

    @staticmethod
    def norms(t):  # _project_ratio, "mars": rows of a 2-D weight, entries of a vector
        return np.sum(np.abs(t), axis=1, keepdims=True) if t.ndim == 2 else np.abs(t)

    def _ratios(self, params):
        ratios, raws, norms = [], [], []
        for i, (p, a) in enumerate(zip(params, self.anchors, strict=True)):
            n = self.norms(p - a)
            if self.init:
                self.constraints[i] = n.min() / 2
            c = self.constraints[i]  # _clip
            if c <= 0:
                c = 1e-8
            if (max(c, 0) / (n + 1e-8)).min() > 1:
                c = n.max()
            self.constraints[i] = c
            raw = max(c, 0) / (n + 1e-8)
            ratios.append(np.clip(raw, 0, 1))
            raws.append(raw)
            norms.append(n)
        self.init = False
        return ratios, raws, norms

    def _loss_grads(self, projected, x, y):
        w, b, g, beta = projected
        kernel, bias = self.head
        z = x @ w.T + b
        zhat = (z - self.mean) / np.sqrt(self.var + BN_EPSILON)
        pre = g * zhat + beta
        h = np.maximum(pre, 0)
        p = softmax(h @ kernel + bias)
        n = len(y)
        loss = -np.mean(np.log(p[np.arange(n), y]))
        dlogits = (p - np.eye(p.shape[1])[y]) / n
        dpre = (dlogits @ kernel.T) * (pre > 0)
        dz = dpre * g / np.sqrt(self.var + BN_EPSILON)
        return loss, [dz.T @ x, dz.sum(0), (dpre * zhat).sum(0), dpre.sum(0)]

    def update(self, params, batches):
        """`tpgm_iters(model, apply=False)`: `max_iters` Adam steps on the constraints, then the projection."""
        params = [p.astype("float64") for p in params]
        for x, y in batches[: self.max_iters]:
            ratios, raws, norms = self._ratios(params)
            deltas = [p - a for p, a in zip(params, self.anchors, strict=True)]
            projected = [a + r * d for a, r, d in zip(self.anchors, ratios, deltas, strict=True)]
            _, grads = self._loss_grads(projected, x.astype("float64"), y)
            # d proj / d c = Δ / (n + 1e-8) where Hardtanh is strictly inside (0, 1).
            dc = np.array(
                [
                    np.sum(np.where((r > 0) & (r < 1), gr * d / (n + 1e-8), 0.0))
                    for gr, d, n, r in zip(grads, deltas, norms, raws, strict=True)
                ]
            )
            self.t += 1
            self.m = 0.9 * self.m + 0.1 * dc
            self.v = 0.999 * self.v + 0.001 * dc**2
            m_hat, v_hat = self.m / (1 - 0.9**self.t), self.v / (1 - 0.999**self.t)
            self.constraints = self.constraints - self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        return self.apply(params)

    def apply(self, params):
        """`tpgm_iters(model, apply=True)`: θ ← θ0 + ratio·(θ − θ0) with the clipped constraints."""
        params = [p.astype("float64") for p in params]
        ratios, _, _ = self._ratios(params)
        return [a + r * (p - a) for p, a, r in zip(params, self.anchors, ratios, strict=True)]


# ---------------------------------------------------------------------- against the oracle


def torch_params(model):
    kernel, bias = (keras.ops.convert_to_numpy(v) for v in model.target_backbone.get_layer("dense").weights)
    bn = model.target_backbone.get_layer("bn")
    gamma, beta = keras.ops.convert_to_numpy(bn.gamma), keras.ops.convert_to_numpy(bn.beta)
    return [kernel.T, bias, gamma, beta]


def set_torch_params(model, params):
    kernel, bias, gamma, beta = params
    dense, bn = model.target_backbone.get_layer("dense"), model.target_backbone.get_layer("bn")
    dense.kernel.assign(kernel.T.astype("float32"))
    dense.bias.assign(bias.astype("float32"))
    bn.gamma.assign(gamma.astype("float32"))
    bn.beta.assign(beta.astype("float32"))


def test_radius_updates_and_projections_match_reference_code():
    keras.utils.set_random_seed(3)
    model = keras_tl.TransferModel(mlp_source(), 3)
    rng = np.random.default_rng(1)
    batches = [
        (rng.normal(size=(6, 4)).astype("float32"), rng.integers(0, 3, 6).astype("int32")) for _ in range(3)
    ]
    callback = TPGM(validation_data=batches, learning_rate=0.05, update_every=2, update_steps=2)
    callback.set_model(model)
    callback.on_train_begin()

    bn = model.target_backbone.get_layer("bn")
    head = [keras.ops.convert_to_numpy(v) for v in model.head.weights]
    stats = [keras.ops.convert_to_numpy(bn.moving_mean), keras.ops.convert_to_numpy(bn.moving_variance)]
    reference = ReferenceTPGM(torch_params(model), head, stats, proj_lr=0.05, max_iters=2)
    held_out = batches * 4  # the callback cycles through them in order
    used = 0
    for step in range(5):
        # An optimizer step, then the projection stage (update_every=2: radii learned at steps 0, 2, 4).
        params = [p + rng.normal(scale=0.3, size=p.shape) for p in torch_params(model)]
        set_torch_params(model, params)
        callback.on_train_batch_end(step)
        if step % 2 == 0:
            want = reference.update(params, held_out[used : used + 2])
            used += 2
        else:
            want = reference.apply(params)
        np.testing.assert_allclose(
            list(callback.radii().values()), reference.constraints, rtol=2e-4, err_msg=f"step {step}"
        )
        for got, expected in zip(torch_params(model), want, strict=True):
            np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6, err_msg=f"step {step}")
    assert sorted(callback.radii()) == ["bn/beta", "bn/gamma", "dense/bias", "dense/kernel"]  # not the head
    # The radii moved away from their first value, by Adam's ~lr-sized steps.
    assert reference.t == 6 and np.all(np.abs(reference.constraints) > 0)


# ---------------------------------------------------------------------- under fit


def mars_rows(delta):
    return np.abs(delta) if delta.ndim == 1 else np.sum(np.abs(delta), axis=tuple(range(delta.ndim - 1)))


def test_fit_keeps_every_projected_variable_within_its_radius():
    keras.utils.set_random_seed(0)
    source = tiny_source()
    x, y = tiny_data(n=16)
    x_val, y_val = tiny_data(n=8, seed=2)
    model = compile_sgd(keras_tl.TransferModel(source, 3), lr=0.1, momentum=0.9)
    anchors = {v.path: keras.ops.convert_to_numpy(v) for v in model.target_backbone.trainable_variables}
    head_before = keras.ops.convert_to_numpy(model.head.kernel)
    callback = TPGM(validation_data=(x_val, y_val), batch_size=4)
    history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[callback], verbose=0, shuffle=False).history

    radii = callback.radii()
    assert sorted(radii) == sorted(anchors)  # every trainable backbone variable, and no head variable
    assert all(np.isfinite(r) and r > 0 for r in radii.values())
    for variable in model.target_backbone.trainable_variables:
        delta = keras.ops.convert_to_numpy(variable) - anchors[variable.path]
        assert np.all(mars_rows(delta) <= radii[variable.path] * (1 + 1e-4) + 1e-6), variable.path
    assert not np.allclose(keras.ops.convert_to_numpy(model.head.kernel), head_before)
    assert len(history["tpgm/heldout_loss"]) == 2 and np.all(np.isfinite(history["tpgm/heldout_loss"]))
    assert len(history["tpgm/radius"]) == 2


# ---------------------------------------------------------------------- arguments and config


def test_config_round_trip():
    callback = TPGM(
        validation_data=tiny_data(), norm="l2", learning_rate=0.02, update_every=3, update_steps=2
    )
    config = callback.get_config()
    assert json.loads(json.dumps(config)) == config
    assert TPGM(tiny_data(), **config).get_config() == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"validation_data": None},
            r"Expected validation_data: \(x, y\) arrays or a dataset of \(x, y\) batches. Received: validation_data=None",
        ),
        ({"norm": "l1"}, r"Expected norm to be one of \('mars', 'l2'\). Received: norm='l1'"),
        ({"learning_rate": 0}, r"Expected learning_rate > 0 \(a float\). Received: learning_rate=0"),
        ({"update_every": 0}, r"Expected update_every >= 1 \(an int\). Received: update_every=0"),
        ({"update_steps": 1.5}, r"Expected update_steps >= 1 \(an int\). Received: update_steps=1.5"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"validation_data": tiny_data(), **kwargs}
    with pytest.raises(ValueError, match=message):
        TPGM(**arguments)


def test_frozen_backbone_has_nothing_to_project():
    model = compile_sgd(keras_tl.TransferModel(tiny_source(), 3, freeze_backbone=True))
    callback = TPGM(validation_data=tiny_data())
    callback.set_model(model)
    with pytest.raises(ValueError, match=r"Expected trainable variables outside the head to project"):
        callback.on_train_begin()


def test_anchor_is_the_frozen_source_copy_when_the_model_keeps_one():
    model = compile_sgd(keras_tl.TransferModel(tiny_source(), 3, keep_source=True))
    for variable in model.target_backbone.trainable_variables:  # as if restored from a checkpoint mid-run
        variable.assign(keras.ops.convert_to_numpy(variable) + 0.5)
    callback = TPGM(validation_data=tiny_data())
    callback.set_model(model)
    callback.on_train_begin()
    callback.apply_projection()  # radii not learned yet: clipped to 1e-8, i.e. onto θ0
    frozen = named_variables(model.source_backbone)
    for key, variable in named_variables(model.target_backbone).items():
        if variable.trainable:
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(variable),
                keras.ops.convert_to_numpy(frozen[key]),
                atol=1e-6,
                err_msg=key,
            )
