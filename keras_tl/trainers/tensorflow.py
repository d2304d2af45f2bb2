"""TensorFlow train/test steps for `TransferModel` (GradientTape)."""

import keras
import tensorflow as tf


def _zeros_for_none(gradients, variables):
    # tf.UnconnectedGradients.ZERO fails on Keras variables (their dtype is a string).
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(gradients, variables, strict=True)]


class TensorFlowTransferTrainer:
    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        rule = self.gradient_rule
        # A persistent tape lets ∇J and ∇Ω share the forward pass; for weight-only terms the
        # second gradient only walks the regularizer's own ops.
        with tf.GradientTape(persistent=rule is not None) as tape:
            values = self.step_values(x, y, training=True)
            y_pred = values["logits"]
            empirical = self.empirical_loss(x, y, y_pred, sample_weight, training=True)
            terms = self.regularization_terms(values)
            regularization = tf.add_n(list(terms.values())) if terms else tf.zeros(())
            total = empirical + regularization
        variables = self.trainable_variables
        stats = None
        if rule is None:
            gradients = tape.gradient(total, variables)
        else:
            loss_gradients = _zeros_for_none(tape.gradient(empirical, variables), variables)
            reg_gradients = _zeros_for_none(tape.gradient(regularization, variables), variables)
            gradients, stats = rule(loss_gradients, reg_gradients)
        del tape
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_trackers(x, y, y_pred, sample_weight, empirical, terms, stats)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        values = self.step_values(x, y, training=False)
        empirical = self.empirical_loss(x, y, values["logits"], sample_weight, training=False)
        terms = self.regularization_terms(values)
        return self._update_trackers(x, y, values["logits"], sample_weight, empirical, terms)
