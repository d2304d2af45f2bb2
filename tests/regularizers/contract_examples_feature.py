"""Contract-test instances of the feature-map regularizers, for `tiny_source()` with taps `TAPS`."""

from keras_tl.regularizers import ACT, AST, DELTA, GCA, SPA, FeatureMapDistillation, L2SPAttention
from tests.conftest import TAPS

# Channels of TAPS in tiny_source() (one block per stage: 16, 32, 64 filters).
TAP_CHANNELS = dict(zip(TAPS, (16, 32, 64), strict=True))


def uneven_channel_weights():
    """Softmax-like weights that differ per channel, so a wrong channel order would show."""
    return {name: [(j + 1) / (c * (c + 1) / 2) for j in range(c)] for name, c in TAP_CHANNELS.items()}


CONTRACT_EXAMPLES = {
    FeatureMapDistillation: lambda: FeatureMapDistillation(alpha=0.01),
    DELTA: lambda: DELTA(alpha=0.01, channel_weights=uneven_channel_weights()),
    L2SPAttention: lambda: L2SPAttention(alpha=0.1, beta=0.01, channel_weights=uneven_channel_weights()),
    AST: lambda: AST(alpha=0.01),
    ACT: lambda: ACT(alpha=0.01),
    SPA: lambda: SPA(alpha=0.01),
    GCA: lambda: GCA(alpha=0.01, reduction=4),
}
