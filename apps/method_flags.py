"""The apps' method flags: `--method=l2_sp,delta+dtnh`, `--hparams=alpha=0.1,l2.beta=0.001`, `--plugins`.

Command-line syntax only: the methods, their hyperparameters and their checks are
`keras_tl.methods`'. A method registered outside keras_tl (`keras_tl.methods.register`) is
reached by naming its module in `--plugins`, imported before the other flags are checked.
"""

import importlib

from absl import flags

from apps import flag_groups
from keras_tl import methods

# --method=auto: keras_tl.select chooses the method (apps.auto_select).
AUTO = "auto"


def define(fv, default_methods):
    """Defines --method, --dtnh, --hparams and --plugins on `fv`, with one validator for all of them."""
    flags.DEFINE_list(
        "method",
        list(default_methods),
        f"Methods to run, each from {methods.names()} (or registered by a --plugins module), optionally "
        f"with '{methods.DTNH_SUFFIX}', or '{AUTO}' (keras_tl.select chooses one on a validation split).",
        flag_values=fv,
    )
    flags.DEFINE_boolean("dtnh", False, "Combine every method with DTNH.", flag_values=fv)
    flags.DEFINE_list(
        "hparams",
        [],
        "Method hyperparameters 'name=value' (all methods that have it) or "
        "'method.name=value', e.g. alpha=0.1,l2.beta=0.001.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "plugins",
        [],
        "Python modules to import first, e.g. ones registering methods of their own with "
        "keras_tl.methods.register.",
        flag_values=fv,
    )

    def check_methods(entries):
        import_plugins(fv["plugins"].value)  # validators run after parsing: --plugins is set
        check_entries(entries)

    def check_hparams_flag(values):
        entries = list(values["method"])
        if AUTO in entries and "select_candidates" in fv:  # --hparams apply to auto's candidates too
            entries += fv["select_candidates"].value
        try:
            check_entries(values["method"])
            check_hparams(entries, parse_hparams(values["hparams"]))
        except ValueError as error:
            raise flags.ValidationError(f"--hparams: {error}") from error
        return True

    flag_groups.validator(fv, "plugins", import_plugins)
    flag_groups.validator(fv, "method", check_methods)
    flags.register_multi_flags_validator(["method", "hparams"], check_hparams_flag, message="", flag_values=fv)


def import_plugins(modules):
    """Imports each module of `modules` (they register their methods); an unknown one is a `ValueError`."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"Expected --plugins to name importable modules. Received: {module!r} ({error})") from error


def parse_hparams(values):
    """`["alpha=0.1", "k=2", "attention=false"]` → `{"alpha": 0.1, "k": 2, "attention": False}`."""
    parsed = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"Expected --hparams entries 'name=value'. Received: {item!r}")
        if value.lower() in ("true", "false"):
            parsed[key] = value.lower() == "true"
            continue
        for kind in (int, float, str):
            try:
                parsed[key] = kind(value)
                break
            except ValueError:
                continue
    return parsed


def check_entries(entries):
    """Raises `ValueError` naming the registered methods if an entry is unknown."""
    unknown = [entry for entry in entries if entry != AUTO and methods.split_label(entry)[0] not in methods.names()]
    if unknown or not entries:
        raise ValueError(
            f"Unknown method(s) {unknown}. Expected a comma-separated list of {sorted(methods.names())}, each "
            f"optionally followed by '{methods.DTNH_SUFFIX}'."
        )


def check_hparams(entries, hparams):
    """Raises `ValueError` if a key of `hparams` is accepted by none of the chosen methods, or a value
    does not fit a method that takes it.

    A key is `name` (every chosen method that has it) or `method.name` (that method only).
    """
    chosen = {methods.split_label(entry)[0] for entry in entries if entry != AUTO}
    names = {method: list(methods.registered(method).defaults()) for method in chosen}
    allowed = {name for method in chosen for name in names[method]}
    allowed |= {f"{method}.{name}" for method in chosen for name in names[method]}
    unknown = sorted(set(hparams) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {unknown} for methods {sorted(chosen)}. Expected keys from {sorted(allowed)}."
        )
    for key, value in hparams.items():
        owner, _, name = key.rpartition(".")
        for method in [owner] if owner else sorted(chosen):
            if name in names[method]:
                methods.check_hparam(methods.registered(method), key, value)


def select_hparams(method, hparams):
    """The keys of `hparams` that apply to `method`: `name` (if it has one) and `method.name`, unprefixed."""
    names = list(methods.registered(method).defaults())
    selected = {key: value for key, value in hparams.items() if key in names}
    selected.update({key.split(".", 1)[1]: v for key, v in hparams.items() if key.startswith(method + ".")})
    return selected


def method_for(entry, dtnh, hparams):
    """The `keras_tl.methods.Method` of one `--method` entry, with `--dtnh` and its `--hparams`."""
    name, with_dtnh = methods.split_label(entry)
    return methods.get(name, dtnh=dtnh or with_dtnh, **select_hparams(name, hparams))
