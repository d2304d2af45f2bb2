from keras_tl.models.cards import (
    load_card,
    load_model_and_card,
    load_source,
    resolve_preprocess,
    save_model,
)
from keras_tl.models.legacy import convert_legacy
from keras_tl.models.loading import load_model, load_weights
from keras_tl.models.source import ClassToken, SourceParts, follow_global_policy, split_source
from keras_tl.models.transfer_model import TransferModel
