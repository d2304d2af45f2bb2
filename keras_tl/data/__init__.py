"""Data pipelines: image folders, TFRecords and TensorFlow Datasets as batched `tf.data` pipelines.

`load(spec, split, image_size=..., preprocess=...)` is the entry point; the rest are its parts
(few-shot sampling, TensorFlow image transforms, keyed augmentation, evaluation by center crop or
10-crop). `as_split` takes plain data (a `tf.data.Dataset` or `(x, y)` arrays) as a `Split`.
"""

from keras_tl.data import augmentation, transforms
from keras_tl.data.adapters import as_arrays, as_split, first_pass, plain_split
from keras_tl.data.evaluation import accuracies, evaluate, predict_logits
from keras_tl.data.pipeline import SCHEMES, load, parse_spec, records_for
from keras_tl.data.records import Records, scan
from keras_tl.data.sampling import few_shot_indices
from keras_tl.data.split import Split

__all__ = [
    "SCHEMES",
    "Records",
    "Split",
    "accuracies",
    "as_arrays",
    "as_split",
    "augmentation",
    "evaluate",
    "few_shot_indices",
    "first_pass",
    "load",
    "parse_spec",
    "plain_split",
    "predict_logits",
    "records_for",
    "scan",
    "transforms",
]
