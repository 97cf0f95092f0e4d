"""Comparing saved runs: what differs between their specs, and one table row per run.

The Compare runs page shows every saved run with the same columns (name,
dataset, preset, parameters, speed, test accuracy) plus one column per spec
field whose value differs between the runs being compared, so "what changed"
is visible without reading whole specs. Damaged run folders get a row too,
with the reason, and never an exception.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from playground.spec import ExperimentSpec, field_names, get_value

# Fields that say nothing about the experiment's design: never shown as "what differs".
_NOT_DESIGN = {"preset"}


def differing_fields(specs: Sequence[ExperimentSpec]) -> list[str]:
    """Flat field names (the URL keys) whose values are not all equal across `specs`, in spec order.

    Args:
        specs: two or more specs; fewer give [].
    """
    if len(specs) < 2:
        return []
    return [
        name for name in field_names()
        if name not in _NOT_DESIGN and len({_shown(get_value(s, name)) for s in specs}) > 1
    ]


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def run_row(record: Any, fields: Sequence[str] = ()) -> dict[str, Any]:
    """One table row for a run: fixed columns, then one column per field in `fields`.

    Args:
        record: a RunRecord (damaged ones give a row with their reason as status).
        fields: flat spec field names to add as columns (see `differing_fields`).

    Returns:
        {column: value}; numbers stay numbers (None where unknown) so the table sorts them.
    """
    m = record.metrics or {}

    def number(key: str) -> float | None:
        value = m.get(key)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    spec = record.spec
    row: dict[str, Any] = {
        "name": record.name or record.run_id,
        "dataset": record.dataset or (spec.data.dataset if spec else ""),
        "preset": spec.preset if spec else "",
    }
    for name in fields:
        row[name] = _shown(get_value(spec, name)) if spec else ""
    params = number("params")
    row.update({
        "parameters": int(params) if params is not None else None,
        "epochs": int(number("epochs_completed") or 0) if spec else None,
        "train seconds": number("train_seconds"),
        "images/s": number("images_per_second"),
        "test accuracy": number("test_accuracy"),
        "created": record.created.replace("T", " ")[:16],
        "status": f"damaged: {record.damaged}" if record.damaged else (m.get("stop_reason") or "ok"),
    })
    return row


def may_manage(record: Any, session_id: str, *, protected: bool) -> bool:
    """Whether this session may rename or delete `record`.

    On a server without a teacher code (`protected` False: a personal install)
    every run may be managed. With one, a session manages only its own runs
    and runs saved without an owner (the command line); the teacher code
    unlocks the rest on the page.
    """
    return not protected or record.owner in (None, session_id)
