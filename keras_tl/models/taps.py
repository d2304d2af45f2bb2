"""Where taps and terms meet: the taps a `TransferModel` uses, and the errors that replace silent no-ops.

A feature-map term (KnowDist, DELTA, AFA, SPA/GCA, ...) sums over the tapped layers; with
no taps it would be a constant 0 (KnowDist, DELTA) or fail deep inside Keras (AFA, SPA/GCA
building their attention from no shapes). So the taps are resolved and checked once, when
the model is built, and every failure names the term and says how to pass taps.
"""

import logging

from keras_tl import backbones
from keras_tl.models.source import check_functional

logger = logging.getLogger(__name__)

# The step values holding tapped feature maps (`keras_tl.regularizers.base.STEP_VALUES`).
FEATURE_VALUES = ("target_features", "source_features")


def check_taps_argument(taps):
    """`taps` as a list of names (`None` stays `None`); a string or a non-string name is an error."""
    if taps is None:
        return None
    if isinstance(taps, str):
        raise ValueError(
            f"Expected taps to be a list of layer names. Received: taps={taps!r}, a string "
            f"(it would be read as one tap per character). Pass taps=[{taps!r}]."
        )
    try:
        taps = list(taps)
    except TypeError as error:
        raise ValueError(f"Expected taps to be a list of layer names. Received: taps={taps!r}") from error
    bad = [tap for tap in taps if not isinstance(tap, str)]
    if bad:
        raise ValueError(f"Expected taps to be a list of layer names (strings). Received: taps={taps!r}")
    return taps


def feature_terms(regularizers):
    """The names of the regularizers that read tapped feature maps."""
    return [r.name for r in regularizers if set(FEATURE_VALUES) & set(r.inputs)]


def source_taps(source, taps, regularizers, source_name=None):
    """Checks that `source` is functional; returns the tap layer names a `TransferModel` of it uses.

    `taps` given: those (checked by `check_taps_argument`). `None`: for a source given by
    name (`source_name`), that backbone's default taps, as before; else, when a term reads
    feature maps, the default taps `keras_tl.backbones.known_taps` finds for the model (a
    keras-hub backbone's `pyramid_outputs`, a model named after a known backbone), logged at
    INFO level; else none.

    Raises:
        TypeError: `source` is subclassed (see `keras_tl.models.source.check_functional`).
        ValueError: a term reads feature maps and there are no taps; the message names the
            terms, says how to pass taps and lists the layers that output feature maps.
    """
    check_functional(source)
    taps = check_taps_argument(taps)
    needing = feature_terms(regularizers)
    if taps is None and source_name is not None:
        taps = backbones.known_taps(source_name if source_name in backbones.NAMES else source)
    elif taps is None and needing:
        taps = backbones.known_taps(source)
        if taps:
            logger.info(
                "TransferModel: regularizers %s read tapped feature maps; taps default to %s "
                "(keras_tl.backbones.default_taps of source %r). Pass taps=[...] to choose others.",
                needing,
                taps,
                source.name,
            )
    taps = taps or []
    if needing and not taps:
        raise ValueError(
            f"Regularizer(s) {needing} read tapped feature maps, but there are no taps: they would add "
            f"nothing. Received: taps={taps!r} for source {source.name!r}, which has no default taps "
            "(keras_tl.backbones.default_taps knows the backbones of keras_tl.backbones.NAMES and "
            "keras-hub backbones). Pass taps=[layer names] to TransferModel (or keras_tl.fine_tune / "
            f"Method.build), e.g. the last layer of each stage; layers with feature maps: {map_layers(source)}"
        )
    return taps


def map_layers(model, limit=20):
    """Names of the layers whose output is a 3D or 4D map (the candidate taps), the last `limit` of them."""
    names = []
    for layer in model.layers:
        try:
            rank = len(layer.output.shape)
        except (AttributeError, ValueError, TypeError):
            continue
        if rank in (3, 4):
            names.append(layer.name)
    return names[-limit:] if len(names) <= limit else ["..."] + names[-limit:]
