"""Numpy re-statements of the authors' released regularization code: the oracles of `test_oracles.py`.

Each function restates, in numpy and in the authors' layout (PyTorch's channels-first
`[b, c, h, w]`), one released formula, read from the public code (not from keras_tl's
docstrings), so a keras_tl term that equals `oracle × documented constant` reproduces the
authors' strength at the authors' coefficient.

- DELTA authors' code (`lixingjian/DELTA`, `DELTA.py`): `reg_l2sp`, `reg_classifier`,
  `reg_fea_map`, `reg_att_fea_map`, and the channel weights softmax(zscore(W) / 5).
- tllib (`thuml/Transfer-Learning-Library`): `regularization/delta.py`
  (`SPRegularization`, `BehavioralRegularization`, `AttentionBehavioralRegularization`),
  `regularization/bss.py` (`BatchSpectralShrinkage`), `regularization/co_tuning.py`
  (`CoTuningLoss`), `regularization/knowledge_distillation.py`
  (`KnowledgeDistillationLoss`, the LwF term).
- Co-Tuning's official code (`thuml/CoTuning`, `module/relationship_learning.py`):
  `direct_relationship_learning` with its 0.8840456604957581 scaling of the logits.
"""

import numpy as np

CO_TUNING_LOGIT_SCALE = 0.8840456604957581


def softmax(x, axis=-1):
    x = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return x / np.sum(x, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = x - np.max(x, axis=axis, keepdims=True)
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def delta_channel_weights(raw):
    """DELTA.py: `js = (js - mean) / std; cw = softmax(js / 5)` for one layer's raw increases."""
    raw = np.asarray(raw, dtype="float64")
    return softmax((raw - raw.mean()) / raw.std() / 5)


def reg_fea_map(source_maps, target_maps):
    """DELTA.py `reg_fea_map` = tllib `BehavioralRegularization`: Σ_layers ½‖FM_t − FM_s‖² over the whole batch."""
    return sum(0.5 * np.sum((t - s) ** 2) for s, t in zip(source_maps, target_maps, strict=True))


def reg_att_fea_map(source_maps, target_maps, channel_weights):
    """DELTA.py `reg_att_fea_map` = tllib `AttentionBehavioralRegularization`.

    distance[b, c] = ‖FM_t[b, c] − FM_s[b, c]‖² (norm over the flattened h·w);
    loss += ½ Σ_{b, c} c · w[c] · distance[b, c] / (h·w), per layer.
    """
    total = 0.0
    for s, t, w in zip(source_maps, target_maps, channel_weights, strict=True):
        b, c, h, width = s.shape
        distance = np.linalg.norm((t - s).reshape(b, c, h * width), axis=2) ** 2
        total += 0.5 * np.sum(c * np.asarray(w)[None, :] * distance / (h * width))
    return total


def reg_l2sp(target_weights, source_weights):
    """DELTA.py `reg_l2sp` = tllib `SPRegularization`: Σ ½‖w − w⁰‖² over the parameters the source has."""
    return sum(0.5 * np.sum((target_weights[k] - source_weights[k]) ** 2) for k in source_weights)


def reg_classifier(head_weights):
    """DELTA.py `reg_classifier`: Σ ½‖w‖² over the new head's parameters (the `fc.` ones)."""
    return sum(0.5 * np.sum(w**2) for w in head_weights)


def batch_spectral_shrinkage(feature, k=1):
    """tllib `BatchSpectralShrinkage`: Σ_{i<k} s[num-1-i]² with s the singular values of featureᵀ (descending)."""
    s = np.linalg.svd(feature.T, compute_uv=False)
    return sum(s[len(s) - 1 - i] ** 2 for i in range(k))


def co_tuning_loss(source_head_logits, relationship, labels):
    """tllib `CoTuningLoss`: mean over the batch of −Σ p(ȳ|y_i) · log_softmax(logits_i)."""
    target = relationship[labels]
    return np.mean(np.sum(-target * log_softmax(source_head_logits), axis=-1))


def direct_relationship_learning(logits, labels):
    """Co-Tuning `direct_relationship_learning`: per target class, the mean softmax(0.884 · logits)."""
    probabilities = softmax(logits * CO_TUNING_LOGIT_SCALE)
    return np.stack([probabilities[labels == i].mean(axis=0) for i in range(np.max(labels) + 1)])


def knowledge_distillation_loss(student_logits, teacher_logits, temperature):
    """tllib `KnowledgeDistillationLoss` (LwF): KLDivLoss(batchmean) of softmax(teacher/T) ‖ softmax(student/T)."""
    teacher = softmax(teacher_logits / temperature)
    student = log_softmax(student_logits / temperature)
    return np.sum(teacher * (np.log(teacher) - student)) / len(student_logits)
