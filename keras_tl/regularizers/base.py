"""The contract every keras_tl regularizer follows, and the checks shared by all of them."""

import inspect
import re

import keras
from keras import ops

from keras_tl.api_export import keras_tl_export
from keras_tl.utils.validation import check_number

# What a `TransferModel` can hand to a regularizer in one training step. A regularizer names
# the ones it consumes in `inputs`, and `TransferModel` passes them positionally, in that order.
STEP_VALUES = {
    "target_weights": "dict: trainable target variable key -> value (keys 'backbone/<layer>/<var>', "
    "'head/<layer>/<var>', 'source_head/<layer>/<var>')",
    "source_weights": "dict: the frozen source's value for every target key that has a counterpart",
    "target_features": "dict: tap layer name -> target feature map (one forward pass)",
    "source_features": "dict: tap layer name -> source feature map (frozen, no gradient)",
    "target_pooled": "tensor [batch, dim]: the target's pooled features fed to the heads",
    "source_pooled": "tensor [batch, dim]: the frozen source's pooled features",
    "logits": "tensor [batch, num_classes]: the new target head's logits",
    "source_head_logits": "tensor [batch, source_classes]: the target's copy of the upstream head",
    "source_logits": "tensor [batch, source_classes]: the frozen source's upstream head",
    "labels": "the batch's targets `y` as given to `fit`",
}
SOURCE_VALUES = frozenset({"source_weights", "source_features", "source_pooled", "source_logits"})
SOURCE_FORWARD_VALUES = frozenset({"source_features", "source_pooled", "source_logits"})
WEIGHT_VALUES = frozenset({"target_weights", "source_weights"})


def snake_case(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def check_non_negative(name, value):
    return check_number(name, value, minimum=0)


def call_inputs(call):
    """The step values `call` consumes: its positional parameters, which must name `STEP_VALUES`."""
    parameters = [
        p.name
        for p in inspect.signature(call).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return tuple(parameters)


@keras_tl_export("keras_tl.regularizers.Regularizer")
class Regularizer(keras.layers.Layer):
    """Base class of keras_tl regularizers: a Keras layer returning one scalar loss term.

    The contract `TransferModel` relies on:

    - `inputs`: the names of the step values the term consumes, taken from `STEP_VALUES`;
      `call` receives them positionally in that order. By default they are read from the
      names of `call`'s parameters without defaults (`def call(self, target_weights,
      source_weights)`), so a subclass need not repeat them. Requesting any
      `source_*` value makes the model keep a frozen source copy, and requesting source
      features makes it run the source forward pass.
    - `call(...)` returns a scalar that already includes the regularizer's coefficients.
      The term is multiplied by `scale`, a non-trainable `keras.Variable` (initially 1)
      that callbacks change during `fit` (decay, stage switches) without retracing.
    - A term whose `inputs` are all weight values depends on the weights only: the
      trainers then get its gradient without a second backward pass through the network.
    - `get_config` holds hyperparameters only; variables (attention weights, `scale`) are
      saved with the model.
    - Terms compute in float32 under any dtype policy: the layer's own policy is float32,
      so half-precision features arrive upcast and float32 weights are never rounded.
    - The default `name` is the class name in snake case (not uniquified), so the `fit`
      history key `reg/<name>` is stable across runs.
    """

    inputs = None

    def __init__(self, name=None, **kwargs):
        # float32 whatever the global policy: under `mixed_float16` / `mixed_bfloat16` a layer
        # autocasts its float inputs to the compute dtype, which would round w - w0 and the
        # feature-map differences to half precision before they are formed.
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name or snake_case(type(self).__name__), **kwargs)
        if self.inputs is None:
            self.inputs = call_inputs(self.call)
        unknown = [value for value in self.inputs if value not in STEP_VALUES]
        if not self.inputs or unknown:
            raise TypeError(
                f"Expected `{type(self).__name__}.inputs` to name step values from "
                f"{sorted(STEP_VALUES)}. Received: inputs={self.inputs!r}"
            )
        self.scale = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="scale", autocast=False
        )

    @property
    def requires_source(self):
        return bool(SOURCE_VALUES.intersection(self.inputs))

    @property
    def requires_source_forward(self):
        return bool(SOURCE_FORWARD_VALUES.intersection(self.inputs))

    @property
    def sums_over_batch(self):
        """True for a term summed (not averaged) over the batch: under `tf.distribute` each replica's
        term over its shard is then its share of the global term, and is not divided by the replicas."""
        return False

    @property
    def depends_on_weights_only(self):
        return set(self.inputs) <= WEIGHT_VALUES

    def build(self, *args, **kwargs):
        self.built = True

    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs) * ops.cast(self.scale, "float32")

    def compute_output_spec(self, *args, **kwargs):
        return keras.KerasTensor(shape=(), dtype="float32")

    def get_config(self):
        return {"name": self.name}


def sum_squares(tensors):
    """Σ‖t‖² over a list of tensors, accumulated in float32."""
    total = ops.zeros((), dtype="float32")
    for tensor in tensors:
        total = total + ops.sum(ops.square(ops.cast(tensor, "float32")))
    return total


def match_keys(target, source, what):
    """Splits `target`'s keys into those `source` has and those it lacks; `source` extras are an error."""
    extra = sorted(set(source) - set(target))
    if extra:
        raise ValueError(
            f"Expected every {what} key of the source to exist in the target. "
            f"Received source-only keys: {extra}"
        )
    shared = [key for key in target if key in source]
    for key in shared:
        if tuple(target[key].shape) != tuple(source[key].shape):
            raise ValueError(
                f"Expected matching shapes for {what} '{key}'. Received: "
                f"target shape={tuple(target[key].shape)}, source shape={tuple(source[key].shape)}"
            )
    return shared, [key for key in target if key not in source]
