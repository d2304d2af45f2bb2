"""The plans of the library's defaults: the scale-free α's sweep, and every method at its defaults.

    strength[:<data>] the selection split (DTD-10's val by default), seed 0: each scale-free
                      feature-map method over `STRENGTH_VALUES` of its relative α (how the
                      default α was chosen)
    defaults:<data>   every table label at the library's defaults, the table's seeds, test split
    authors:<data>    every label whose papers' settings differ from the defaults, at the papers'
                      settings (no grid), the same seeds: the divergences users met before 0.2
    variants:<data>   each of `keras_tl.select`'s other default candidates (a method's non-empty
                      `select_variants`: LP-FT over Co-Tuning) alone, at the defaults, the same
                      seeds, test split: the select table's grid's best counts them

Next to `table:<data>` (each method at its grid's best coefficient, the papers' conventions),
they make issue 27's comparison: defaults, papers' defaults and the grid's best, per method.
"""

from benchmarks import plans
from benchmarks.runs import AUTHORS, LIBRARY

# Relative α of the scale-free feature-map terms, in half-decades around the default.
STRENGTH_VALUES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def relative_methods():
    """The registered methods whose α is scale-free (their papers' settings say `relative=False`)."""
    return [name for name in plans.methods.names() if "relative" in plans.methods.registered(name).authors_hparams]


def strength_runs(settings, dataset="dtd10"):
    epochs = plans.chosen_epochs(settings, dataset)
    if epochs is None:
        return []
    return [
        plans.make_run(
            settings, dataset, name, epochs, hparams=(("alpha", alpha),), selection=True, defaults=LIBRARY,
        )
        for name in relative_methods()
        for alpha in STRENGTH_VALUES
    ]


def defaults_runs(settings, dataset, labels, defaults=LIBRARY):
    """Every label of `labels` at the library's defaults (or the papers', `defaults=AUTHORS`) on the test split."""
    epochs = plans.chosen_epochs(settings, dataset)
    if epochs is None:
        return []
    if defaults == AUTHORS:
        labels = [label for label in labels if plans.method_class(label).authors_hparams]
    return [
        plans.make_run(settings, dataset, label, epochs, seed=s, defaults=defaults)
        for s in settings.seeds_of(dataset)
        for label in labels
    ]


def variant_runs(settings, dataset):
    """Each registered method's non-empty `select_variants` at the library's defaults, the table's seeds."""
    epochs = plans.chosen_epochs(settings, dataset)
    if epochs is None:
        return []
    variants = [
        (name, tuple(variant.items()))
        for name in plans.methods.names()
        if plans.methods.registered(name).select_factors
        for variant in plans.methods.registered(name).select_variants
        if variant
    ]
    return [
        plans.make_run(settings, dataset, name, epochs, seed=s, hparams=hparams, defaults=LIBRARY)
        for s in settings.seeds_of(dataset)
        for name, hparams in variants
    ]
