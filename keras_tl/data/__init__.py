"""Data pipelines: image folders, TFRecords and TensorFlow Datasets as batched `tf.data` pipelines.

`load(spec, split, image_size=..., preprocess=...)` is the entry point; the rest are its parts
(few-shot sampling, TensorFlow image transforms, evaluation by center crop or 10-crop).
"""

from keras_tl.data import transforms
from keras_tl.data.evaluation import accuracies, evaluate, predict_logits
from keras_tl.data.pipeline import SCHEMES, Split, load, parse_spec, records_for
from keras_tl.data.records import Records, scan
from keras_tl.data.sampling import few_shot_indices

__all__ = [
    "SCHEMES",
    "Records",
    "Split",
    "accuracies",
    "evaluate",
    "few_shot_indices",
    "load",
    "parse_spec",
    "predict_logits",
    "records_for",
    "scan",
    "transforms",
]
