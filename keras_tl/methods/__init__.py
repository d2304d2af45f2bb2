"""The fine-tuning methods as registered units: `keras_tl.methods.get(name, **hparams)`.

Each method is one class (a frozen dataclass of its hyperparameters, their defaults the
papers' settings) registered by name; `get` returns an instance, `names()` lists them in
registration order. A method builds its `TransferModel` (`build`), doing the data-dependent
preparation first (DELTA's channel attention, Co-Tuning's category relationship, DI2's
diffusion sequences, measured on the training split and cached in `cache_dir`), and gives
its `fit` callbacks; `keras_tl.fine_tune` runs the whole recipe. Any method combines with
DTNH: `get("l2_sp+dtnh")` or `get("l2_sp", dtnh=True)`. See `keras_tl.methods.base` for the
contract and for registering a method of your own.

Example:
>>> method = keras_tl.methods.get("delta", alpha=0.01)
>>> model = method.build(source, train, cache_dir="runs/delta")  # measures the channel weights
>>> model.compile(...); model.fit(train.dataset, callbacks=method.callbacks(epochs, steps))
>>> keras_tl.methods.names()  # ['l2', 'l2_fe', 'l2_sp', 'knowdist', 'delta', ...]
"""

from keras_tl.methods.base import DTNH_SUFFIX, Claim, Context, Method, Setup, check_hparam, resolve_taps
from keras_tl.methods.registry import get, names, register, registered, split_label, unregister

# Registration order is the order of the tables and plans: the modules are imported in it.
# isort: off
from keras_tl.methods.weight_decay import L2, L2FE, L2SP
from keras_tl.methods.feature_maps import AFA, DELTA, SPAGCA, KnowDist, L2SPAtt
from keras_tl.methods.output_level import BSS, DI2, DSD, CoTuning, LwF
from keras_tl.methods.robust import LPFT, Constrained, WiSEFT
from keras_tl.methods.projection import FTP, SPD, TPGM, Surgical

# isort: on
