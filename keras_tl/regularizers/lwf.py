"""LwF: distil the frozen source's softened upstream outputs into the target's upstream head."""

from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.losses.targets import check_upstream_classes
from keras_tl.regularizers.base import Regularizer, check_non_negative
from keras_tl.utils.validation import check_number


@keras_tl_export("keras_tl.regularizers.LwF")
class LwF(Regularizer):
    """λ·CE(softmax(y_o/T), softmax(ŷ_o/T)): keep the upstream head's answers on target images.

    Ω = λ · (1/B) Σ_i −Σ_ȳ y'_o,i[ȳ] · log ŷ'_o,i[ȳ],
    y'_o = softmax(y_o / T),  ŷ'_o = softmax(ŷ_o / T)

    y_o are the frozen source's upstream logits on the batch (recorded responses), ŷ_o the
    target's trainable copy of the upstream head on the target's features. The source runs
    on the same (augmented) batch in inference mode, which equals LwF's recording of y_o
    before training when there is no augmentation, and matches the augmented image when
    there is. As in the paper, the cross-entropy is not multiplied by T² (Hinton et al.'s
    gradient correction); its gradient equals that of KL(y'_o ‖ ŷ'_o), the value is larger
    by the (constant) entropy of y'_o. Needs `TransferModel(..., keep_source_head=True)`; adds
    one frozen source forward pass per step.

    Reference:
        Li & Hoiem, "Learning without Forgetting", TPAMI 2017, Sec. 3 (the distillation
        loss L_old with recorded responses; λ_o = 1, T = 2).

    Args:
        lam: non-negative coefficient λ_o.
        temperature: T > 0.

    Example:
    >>> model = keras_tl.TransferModel(source, num_classes=10, keep_source_head=True,
    ...     regularizers=[keras_tl.regularizers.LwF(lam=1.0, temperature=2.0)])
    """

    inputs = ("source_head_logits", "source_logits")

    def __init__(self, lam=1.0, temperature=2.0, name="lwf", **kwargs):
        # "lwf", not the snake case "lw_f" of the class name: the log key is `reg/lwf`.
        super().__init__(name=name, **kwargs)
        self.lam = check_non_negative("lam", lam)
        self.temperature = check_number("temperature", temperature, minimum=0, exclusive=True)

    def build(self, source_head_logits_shape, source_logits_shape):
        check_upstream_classes(self, source_head_logits_shape, source_logits_shape[-1], "source_logits")
        self.built = True

    def call(self, source_head_logits, source_logits):
        recorded = ops.softmax(ops.cast(source_logits, "float32") / self.temperature, axis=-1)
        current = ops.log_softmax(ops.cast(source_head_logits, "float32") / self.temperature, axis=-1)
        return self.lam * ops.mean(-ops.sum(recorded * current, axis=-1))

    def get_config(self):
        return {**super().get_config(), "lam": self.lam, "temperature": self.temperature}
