"""Numpy transcriptions of the official optimizers, in PyTorch's layout and update order.

Written from the authors' code, not from keras_tl's docstrings:
- `sgdp`: GT-RIPL/FTP `util/FTP.py` (classes `FTP` and `SGDP`), PyTorch's SGD momentum.
- `adam_spd`, `sgd_spd`: GT-RIPL/Selective-Projection-Decay `adamSPD.py` (`AdamSPD.adam`,
  `_ratio`), the inner step of `sgd_spd` being PyTorch's SGD with momentum.
- `rgn_weights`, `adam_groups`: anniesch/surgical-finetuning `main.py` (`get_lr_weights`, the
  RGN branch of `main`: per-group learning rates of a `torch.optim.Adam`).
Parameters are dicts `{name: array}` in PyTorch's layout (output units first); `to_torch` and
`from_torch` convert a Keras kernel.
"""

import numpy as np


def to_torch(value):
    """A Keras kernel in PyTorch's layout: Dense (in, out) -> (out, in); Conv2D (kh, kw, in, out) -> (out, in, kh, kw)."""
    if value.ndim == 2:
        return value.T.copy()
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1).copy()
    return value.copy()


def from_torch(value):
    if value.ndim == 2:
        return value.T.copy()
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0).copy()
    return value.copy()


def _reduce_dims(tensor):
    # torch.sum(dim=()) reduces every dimension: the 1-D case of range(1, tensor.dim()).
    dims = tuple(range(1, tensor.ndim))
    return dims if dims else None


def _mars_norm(tensor):
    return np.sum(np.abs(tensor), axis=_reduce_dims(tensor), keepdims=True) + 1e-8


def _dot(tensor1, tensor2, scale=1.0):
    return np.sum(tensor1 * tensor2, axis=_reduce_dims(tensor1), keepdims=True) * scale


def sgdp(params, grad_fn, steps, lr, momentum=0.9, nesterov=True, k=1.0, exclude_set=()):
    """`SGDP.step` with its `FTP.step`, `steps` times; returns the parameters and FTP's buffers (float64)."""
    pre = {n: p.copy() for n, p in params.items()}
    params = {n: p.astype("float64").copy() for n, p in params.items()}
    mu, beta1, beta2 = 1e-2, 0.9, 0.999
    buf, gamma_buff, first_m, second_m, prev_c, prev_scale = {}, {}, {}, {}, {}, {}
    t = 1
    for _ in range(steps):
        grads = grad_fn(params)
        for name in params:
            p, d_p = params[name], grads[name].astype("float64")
            if momentum != 0:
                if name not in buf:
                    buf[name] = d_p.copy()
                else:
                    buf[name] = momentum * buf[name] + d_p
                d_p = d_p + momentum * buf[name] if nesterov else buf[name]
            d_p = lr * d_p
            if name in exclude_set:
                params[name] = p - d_p
                continue
            c_t = (p - d_p) - pre[name]
            norms = _mars_norm(c_t)
            if t == 1:
                gamma = 1e-8
                first_m[name], second_m[name] = 0.0, 0.0
            else:
                gamma_grad = np.sum(_dot(grads[name], prev_c[name], scale=prev_scale[name]))
                if gamma_grad > 0:
                    gamma_grad = gamma_grad * k
                first_m[name] = beta1 * first_m[name] + (1 - beta1) * gamma_grad
                second_m[name] = beta2 * second_m[name] + (1 - beta2) * gamma_grad**2
                first = first_m[name] / (1 - beta1**t)
                second = second_m[name] / (1 - beta2**t)
                gamma = gamma_buff[name] - mu * first / (np.sqrt(second) + 1e-8)
                gamma = np.clip(gamma, 1e-8, norms.max())
            denom = 1 / norms
            params[name] = pre[name] + np.clip(gamma * denom, 0, 1) * c_t
            gamma_buff[name], prev_c[name], prev_scale[name] = gamma, c_t, denom
        t += 1
    return params, gamma_buff


def _ratio(new_p, param, pre):
    curr_norm, prev_norm = np.linalg.norm(new_p - pre), np.linalg.norm(param - pre)
    return np.clip((curr_norm - prev_norm) / curr_norm, 0.0, 1.0)


def _selective_decay(param, new_p, grad, pre, weight_decay):
    condition = -np.sum(grad * (param - pre))
    if condition < 0.0:
        return new_p - weight_decay * _ratio(new_p, param, pre) * (new_p - pre), True
    return new_p, False


def adam_spd(params, grad_fn, steps, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """`AdamSPD.step`, `steps` times; returns the parameters and how often the decay branch ran."""
    pre = {n: p.astype("float64").copy() for n, p in params.items()}
    params = {n: p.astype("float64").copy() for n, p in params.items()}
    beta1, beta2 = betas
    exp_avg = {n: np.zeros_like(p) for n, p in params.items()}
    exp_avg_sq = {n: np.zeros_like(p) for n, p in params.items()}
    decays = 0
    for step in range(1, steps + 1):
        grads = grad_fn(params)
        for name, param in params.items():
            grad = grads[name].astype("float64")
            bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
            exp_avg[name] = beta1 * exp_avg[name] + (1 - beta1) * grad
            exp_avg_sq[name] = beta2 * exp_avg_sq[name] + (1 - beta2) * grad * grad
            denom = np.sqrt(exp_avg_sq[name]) / np.sqrt(bias_correction2) + eps
            new_p = param - (lr / bias_correction1) * exp_avg[name] / denom
            params[name], decayed = _selective_decay(param, new_p, grad, pre[name], weight_decay)
            decays += decayed
    return params, decays


def sgd_spd(params, grad_fn, steps, lr, weight_decay, momentum=0.9):
    """The SPD rule of `AdamSPD.adam` after PyTorch's SGD-with-momentum step instead of Adam's."""
    pre = {n: p.astype("float64").copy() for n, p in params.items()}
    params = {n: p.astype("float64").copy() for n, p in params.items()}
    buf, decays = {}, 0
    for _ in range(steps):
        grads = grad_fn(params)
        for name, param in params.items():
            grad = grads[name].astype("float64")
            buf[name] = grad.copy() if name not in buf else momentum * buf[name] + grad
            new_p = param - lr * buf[name]
            params[name], decayed = _selective_decay(param, new_p, grad, pre[name], weight_decay)
            decays += decayed
    return params, decays


def rgn_weights(params, grads_per_batch, layer_names):
    """`get_lr_weights` then the RGN normalisation of `main`: `{name: weight}` for `layer_names`."""
    metrics = {name: [] for name in layer_names}
    for grads in grads_per_batch:
        for name in layer_names:
            metrics[name].append(np.linalg.norm(grads[name]) / np.linalg.norm(params[name]))
    weights = {name: np.array(values).mean(0) for name, values in metrics.items()}
    max_weight = max(weights.values())
    return {name: value / max_weight for name, value in weights.items()}


def adam_groups(params, grads, lrs, state, betas=(0.9, 0.999), eps=1e-8):
    """One `torch.optim.Adam` step (no weight decay) with a learning rate per parameter; `state` is updated."""
    beta1, beta2 = betas
    new = {}
    for name, lr in lrs.items():
        grad = grads[name].astype("float64")
        step, m, v = state.get(name, (0, 0.0, 0.0))
        step += 1
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        denom = np.sqrt(v) / np.sqrt(1 - beta2**step) + eps
        new[name] = params[name] - (lr / (1 - beta1**step)) * m / denom
        state[name] = (step, m, v)
    return new
