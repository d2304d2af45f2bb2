"""Small problems the optimizer wrappers and their numpy references both solve."""

import keras
import numpy as np

from tests.optimizers import reference

# Keras-layout shapes: a Dense kernel, a Conv2D kernel, a bias, and a head kernel.
SHAPES = {"dense_kernel": (3, 4), "conv_kernel": (2, 2, 3, 4), "bias": (4,), "head_kernel": (4, 2)}


class Quadratic:
    """L = Σ_l ½ Σ a_l ⊙ (θ_l − θ*_l)², gradients a ⊙ (θ − θ*), from a seeded start θ0.

    With `return_after=n`, θ* is the start θ0 from the n-th gradient on (counted per call of
    `gradients`; `reset` restarts the count): the loss then pulls back towards the anchor.
    """

    def __init__(self, seed=0, scale=1.0, return_after=None):
        rng = np.random.default_rng(seed)
        self.start = {n: rng.normal(0, 0.5, s).astype("float32") for n, s in SHAPES.items()}
        self.target = {n: rng.normal(0, scale, s).astype("float32") for n, s in SHAPES.items()}
        self.curvature = {n: rng.uniform(0.2, 2.0, s).astype("float32") for n, s in SHAPES.items()}
        self.return_after = return_after
        self.calls = 0

    def reset(self):
        self.calls = 0

    def gradients(self, values):
        returning = self.return_after is not None and self.calls >= self.return_after
        self.calls += 1
        target = self.start if returning else self.target
        return {n: (self.curvature[n] * (values[n] - target[n])).astype("float32") for n in values}

    def torch_gradients(self, torch_values):
        values = {n: reference.from_torch(v) for n, v in torch_values.items()}
        return {n: reference.to_torch(g) for n, g in self.gradients(values).items()}

    def variables(self):
        return [keras.Variable(self.start[n], name=n) for n in SHAPES]

    def run(self, optimizer, steps, stateless=False):
        """`steps` updates through `optimizer.apply` (or `stateless_apply`); returns the values by name."""
        self.reset()
        variables = self.variables()
        optimizer.build(variables)
        state = [v.value for v in optimizer.variables]
        for _ in range(steps):
            values = {n: keras.ops.convert_to_numpy(v) for n, v in zip(SHAPES, variables, strict=True)}
            by_name = self.gradients(values)
            grads = [by_name[n] for n in SHAPES]
            if stateless:
                new, state = optimizer.stateless_apply(state, grads, [v.value for v in variables])
                for variable, value in zip(variables, new, strict=True):
                    variable.assign(value)
            else:
                optimizer.apply(grads, variables)
        if stateless:
            for variable, value in zip(optimizer.variables, state, strict=True):
                variable.assign(value)
        return {n: keras.ops.convert_to_numpy(v) for n, v in zip(SHAPES, variables, strict=True)}


def regression_data(n=12, features=3, outputs=2, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.normal(size=(n, outputs)).astype("float32")
    return x, y


def regression_model(seed=0, features=3, outputs=2):
    """A linear regression `Dense` whose MSE gradients `regression_gradients` computes in numpy."""
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(outputs, name="dense")])
    model.layers[0].kernel.assign(rng.normal(0, 0.5, (features, outputs)).astype("float32"))
    model.layers[0].bias.assign(rng.normal(0, 0.5, (outputs,)).astype("float32"))
    return model


def regression_gradients(x, y, values):
    """∇ of Keras' MSE (mean over outputs, then over the batch) for a Dense with `values` (Keras layout)."""
    residual = x @ values["kernel"] + values["bias"] - y
    factor = 2.0 / residual.size
    return {"kernel": factor * x.T @ residual, "bias": factor * residual.sum(0)}


def batches(x, y, batch_size):
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def regression_weights(model):
    layer = model.layers[0]
    return {
        "kernel": keras.ops.convert_to_numpy(layer.kernel),
        "bias": keras.ops.convert_to_numpy(layer.bias),
    }
