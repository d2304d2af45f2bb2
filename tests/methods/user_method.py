"""A method registered from outside keras_tl, as a user would: one class in one file.

`apps.finetune --plugins=tests.methods.user_method --method=l1_sp` reaches it.
"""

import keras

import keras_tl


@keras.saving.register_keras_serializable(package="user_terms")
def l1_sp(target_weights, source_weights, alpha=0.01):
    return alpha * sum(keras.ops.sum(keras.ops.abs(target_weights[k] - source_weights[k])) for k in source_weights)


@keras_tl.methods.register
class L1SP(keras_tl.methods.Method):
    """L1 distance to the source weights: α·Σ|w − w⁰| (a user's method)."""

    name = "l1_sp"
    display_name = "L1-SP"
    reference = "a user's own"
    rule = "α·Σ|w − w⁰| on the source's weights"
    coefficient = "alpha"
    claims = (keras_tl.methods.Claim("l2"),)

    alpha: float = 0.001

    def terms(self, context):
        return [keras_tl.regularizers.from_function(l1_sp, alpha=self.alpha)]
