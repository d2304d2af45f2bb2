from keras_tl.models.loading import load_model, load_weights
from keras_tl.models.source import SourceParts, split_source
from keras_tl.models.transfer_model import TransferModel
