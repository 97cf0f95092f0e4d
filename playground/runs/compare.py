"""Comparing saved runs: what differs between their specs, and one table row per run.

The Compare runs page shows every saved run with the same columns (name,
dataset, preset, parameters, speed, test accuracy) plus one column per spec
field whose value differs between the runs being compared, so "what changed"
is visible without reading whole specs. Damaged run folders get a row too,
with the reason, and never an exception. An imported run's numbers are its
bundle's claims: they are shown as such ("claimed 95.0%"), never in the
columns that sort runs against each other.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from playground.runs.record import RunRecord
from playground.spec.experiment import ExperimentSpec, field_names, get_value

# Fields that already have a column of their own in `run_row`.
_OWN_COLUMNS = {"preset", "dataset"}


def differing_fields(specs: Sequence[ExperimentSpec]) -> list[str]:
    """Flat field names (the URL keys) whose values are not all equal across `specs`, in spec order.

    "dataset" and "preset" are left out: every row shows them anyway.

    Args:
        specs: two or more specs; fewer give [].
    """
    if len(specs) < 2:
        return []
    return [
        name for name in field_names()
        if name not in _OWN_COLUMNS and len({_shown(get_value(s, name)) for s in specs}) > 1
    ]


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def run_row(record: RunRecord, fields: Sequence[str] = ()) -> dict[str, Any]:
    """One table row for a run: fixed columns, then one column per field in `fields`.

    Args:
        record: a run (damaged ones give a row with their reason as status).
        fields: flat spec field names to add as columns (see `differing_fields`).

    Returns:
        {column: value}; numbers stay numbers (None where unknown) so the table sorts them.
        An imported run has None in the measured columns and its claims in "status".
    """
    m = record.metrics or {}

    def number(key: str) -> float | None:
        value = _finite(m.get(key))
        return None if record.imported and key in _CLAIMED else value

    spec = record.spec
    params = number("params")
    row: dict[str, Any] = {
        "name": record.name or record.run_id,
        "dataset": record.dataset or (spec.data.dataset if spec else ""),
        "preset": spec.preset if spec else "",
        "test accuracy": number("test_accuracy"),
        "parameters": int(params) if params is not None else None,
        "train seconds": number("train_seconds"),
        "images/s": number("images_per_second"),
        "epochs trained": number("epochs_completed"),
    }
    for name in fields:
        row[name] = _shown(get_value(spec, name)) if spec else ""
    row["created"] = record.created.replace("T", " ")[:16]
    if record.damaged:
        row["status"] = f"damaged: {record.damaged}"
    elif record.imported:
        row["status"] = f"imported: {accuracy_text(record)}"
    else:
        row["status"] = m.get("stop_reason") or "ok"
    return row


# The metrics an imported bundle only claims (the parameter count is always the rebuilt model's).
_CLAIMED = ("test_accuracy", "train_seconds", "images_per_second", "epochs_completed", "test_loss")


def accuracy_text(record: RunRecord) -> str:
    """A run's test accuracy in words: "test acc 93.1%", "test acc –" (never evaluated) or "claimed 95.0%" (imported).

    Args:
        record: an undamaged run.
    """
    accuracy = _finite(record.metrics.get("test_accuracy"))
    if record.imported:
        return f"claimed {accuracy:.1%}" if accuracy is not None else "no claimed accuracy"
    return f"test acc {accuracy:.1%}" if accuracy is not None else "test acc –"


def _finite(value: Any) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def task_key(record: RunRecord) -> tuple:
    """What a run classifies: (dataset, class names, input shape). Runs with equal keys can form an ensemble."""
    dataset = record.spec.data.dataset if record.spec is not None else record.dataset
    return (dataset, tuple(record.class_names), tuple(record.input_shape or ()))


def largest_task_group(records: Sequence[RunRecord]) -> list[RunRecord]:
    """The biggest group of `records` with one task (ties: the group of the earliest record), in the given order."""
    keys = [task_key(r) for r in records]
    if not keys:
        return []
    best = max(keys, key=lambda k: (keys.count(k), -keys.index(k)))
    return [r for r, k in zip(records, keys) if k == best]


def may_manage(record: RunRecord, session_id: str, *, protected: bool) -> bool:
    """Whether this session may rename or delete `record` without the teacher code.

    On a server without a teacher code (`protected` False: a personal install)
    every run may be managed. With one, a session manages only its own runs;
    runs without an owner (saved from the command line: the teacher's, and
    damaged folders whose owner cannot be read) need the teacher code, as do
    other sessions' runs.
    """
    return not protected or (bool(session_id) and record.owner == session_id)
