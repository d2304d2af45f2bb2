"""What `keras_tl.select` returns: the chosen method and model, the table of what was tried, the cost."""

import dataclasses
import json
import math

from keras_tl.api_export import keras_tl_export
from keras_tl.selection.candidates import Candidate

STATUSES = ("chosen", "final", "promoted", "stopped", "diverged", "failed", "running")


def _metric(trial, name):
    return trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None


def trial_rows(oracle):
    """One row per trial of the oracle's rungs, in start order (see `SelectionResult.table`)."""
    rows, last, winner = [], len(oracle.rungs) - 1, oracle.winner()
    for rung, trial_ids in enumerate(oracle.entries):
        following = oracle.entries[rung + 1] if rung < last else []
        promoted = {oracle.trials[t].hyperparameters.values["candidate"] for t in following}
        for trial_id in trial_ids:
            trial = oracle.trials[trial_id]
            values = trial.hyperparameters.values
            candidate = Candidate(values["method"], json.loads(values["hparams"]))
            score = _metric(trial, "val_top1")
            if trial.status not in ("COMPLETED", "FAILED"):
                status = "running"
            elif _metric(trial, "diverged"):
                status = "diverged"
            elif trial.status != "COMPLETED":
                status = "failed"
            elif rung < last:
                status = "promoted" if values["candidate"] in promoted else "stopped"
            else:
                status = "chosen" if values["candidate"] == winner else "final"
            steps = _metric(trial, "steps")
            rows.append(
                {
                    "candidate": candidate.name,
                    "index": values["candidate"],
                    "method": candidate.label,
                    "hparams": candidate.hparams,
                    "rung": rung,
                    "epochs": None if _metric(trial, "epochs") is None else int(_metric(trial, "epochs")),
                    "val_top1": None if score is None or math.isnan(score) else float(score),
                    "rung_top1": _metric(trial, "rung_top1"),
                    "steps": None if steps is None else int(steps),
                    "setup_seconds": _metric(trial, "setup_seconds"),
                    "status": status,
                    "trial_id": trial_id,
                }
            )
    return rows


def cost_of(rows, epochs, steps_per_epoch, planned_epochs):
    """Training steps of the search over one full L2 run's (`epochs` × `steps_per_epoch`), and the
    preparation's seconds apart (data-dependent methods measure their data before `fit`)."""
    steps = sum(row["steps"] or 0 for row in rows)
    full = epochs * steps_per_epoch
    return {
        "training_steps": steps,
        "l2_run_steps": full,
        "ratio": steps / full,
        "planned_ratio": planned_epochs / epochs,
        "setup_seconds": round(float(sum(row["setup_seconds"] or 0.0 for row in rows)), 2),
    }


def markdown(summary):
    """A search as markdown, from `SelectionResult.get_config()` (as results.json holds it)."""
    chosen = Candidate(summary["method"], summary["hparams"]).name
    reference = summary["reference_top1"]
    reference = "diverged" if reference is None else f"{100 * reference:.1f} %"
    cost = summary["cost"]
    lines = [
        f"Chosen: {chosen}, validation top-1 {100 * summary['validation_top1']:.1f} % (L2: {reference}); cost "
        f"{cost['ratio']:.2f} L2 runs ({cost['training_steps']} training steps; preparation and model builds "
        f"{cost['setup_seconds']:.0f} s)",
        "",
        "| candidate | rung | epochs | val top-1 (%) | status |",
        "|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        score = "" if row["val_top1"] is None else f"{100 * row['val_top1']:.1f}"
        lines.append(f"| {row['candidate']} | {row['rung']} | {row['epochs']} | {score} | {row['status']} |")
    wise = summary.get("wise_ft")
    if wise:
        lines += [
            "",
            f"WiSE-FT on the chosen model (no training): α = {wise['alpha']:g}, validation top-1 "
            f"{100 * wise['top1']:.1f} %"
            + _wise_ft_kept(wise),
        ]
    return "\n".join(lines)


def _wise_ft_kept(wise):
    if wise["alpha"] != 1.0:
        return ""
    if wise.get("p_value") is None:
        return " (the model itself: no α < 1 was better)"
    return (
        f" (the model itself: α = {wise['sweep_alpha']:g}'s edge was not significant, "
        f"McNemar p = {wise['p_value']:.2f})"
    )


@keras_tl_export("keras_tl.selection.SelectionResult")
@dataclasses.dataclass
class SelectionResult:
    """What `keras_tl.select` returns.

    Attributes:
        method: the chosen `keras_tl.methods.Method`, its hyperparameters set.
        model: its `TransferModel`, trained for the search's full `epochs` (restored from its run).
        history: that run's `fit` history, every epoch (`{metric: [per epoch]}`).
        validation_top1: its validation top-1 on the last rung.
        reference_top1: L2's on the last rung (None if L2 diverged).
        table: one dict per trial, in start order: `candidate` (its name), `index` (its place in
            the candidate list, L2 0), `method` (label),
            `hparams`, `rung`, `epochs` (reached), `val_top1` (None if diverged or failed),
            `rung_top1` (on a rung scored after a cool-down, the top-1 before it; else None),
            `steps` (its training steps), `setup_seconds`, `status`: `chosen`, `final` (on the
            last rung, not chosen), `promoted`, `stopped` (not promoted), `diverged` or `failed`.
        cost: `training_steps` (all trials), `l2_run_steps` (one full L2 run's), `ratio` (the
            two's quotient), `planned_ratio` (the rungs' plan), `setup_seconds` (the methods'
            preparation and model builds, not in the steps).
        directory: the search's project folder (its trials, the candidates' checkpoints).
        wise_ft: WiSE-FT on the chosen model (`select(wise_ft=True)`): `{"alpha", "top1", "table",
            "sweep_alpha", "p_value"}`, `alpha` 1.0 where no interpolation towards the source beat
            the model itself significantly (`sweep_alpha` the sweep's best, `p_value` McNemar's for
            it against the model, None when it was no better); None: not tried.

    Example:
    >>> result = keras_tl.select(source, train, validation, epochs=9, directory="runs/select")
    >>> result.method, result.validation_top1, result.cost["ratio"]
    >>> print(result.markdown())
    """

    method: object
    model: object
    history: dict
    validation_top1: float
    reference_top1: float | None
    table: list
    cost: dict
    directory: str
    wise_ft: dict | None = None

    def markdown(self):
        """The table of what was tried, the chosen method and the cost first (see `markdown`)."""
        return markdown(self.get_config())

    def get_config(self):
        """Everything but the model, JSON-safe (`apps.finetune` writes it to results.json)."""
        return {
            "method": self.method.label,
            "hparams": dict(self.method.hparams),
            "validation_top1": self.validation_top1,
            "reference_top1": self.reference_top1,
            "table": self.table,
            "cost": self.cost,
            "directory": self.directory,
            "wise_ft": self.wise_ft,
        }
