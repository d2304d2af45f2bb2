import keras
import pytest

from keras_tl import distribute


def test_unknown_strategy_lists_the_allowed_ones():
    allowed = distribute.STRATEGIES[keras.backend.backend()]
    with pytest.raises(ValueError, match=rf"Expected distribute to be one of {allowed!r}".replace("(", r"\[").replace(")", r"\]")):
        distribute.scope("tpu")


def test_none_is_a_no_op():
    with distribute.scope("none"):
        assert keras.distribution.distribution() is None
