"""Pick a saved run: the session's latest first, then every other saved run, newest first."""

from __future__ import annotations

import streamlit as st

from playground.runs.compare import accuracy_text
from playground.runs.record import RunRecord
from playground.ui.session import current_run_id, visible_runs


def run_label(record: RunRecord, mine: str | None = None) -> str:
    """One line naming a run, e.g. "My run · shapes · test acc 93.1% · 2025-01-02 10:00".

    A run without a test accuracy (one saved after an epoch, its training
    interrupted) shows "test acc –"; an imported run shows its bundle's claim
    ("claimed 95.0%"; see `compare.accuracy_text`). Select boxes show the
    label as plain text.

    Args:
        record: an undamaged run.
        mine: the run id of this session's latest run, marked as such.
    """
    parts = [record.name or record.run_id]
    parts.append(str(record.spec.data.dataset).rsplit("/", 1)[-1])
    parts.append(accuracy_text(record))
    parts.append(str(record.created)[:16].replace("T", " "))
    label = " · ".join(parts)
    return f"{label} (this session's latest)" if record.run_id == mine else label


def pick_run(key: str, label: str = "Run") -> RunRecord | None:
    """A select box of saved runs; returns the chosen RunRecord, or None when there are none.

    Args:
        key: the widget key (unique on the page).
        label: the select box label.
    """
    records = visible_runs()
    if not records:
        st.info("No saved runs yet: train one on the Playground first.")
        return None
    mine = current_run_id()
    records.sort(key=lambda r: r.created, reverse=True)
    records.sort(key=lambda r: r.run_id != mine)  # stable: the session's latest first, then newest first
    by_id = {r.run_id: r for r in records}
    chosen = st.selectbox(label, list(by_id), format_func=lambda run_id: run_label(by_id[run_id], mine), key=key)
    return by_id.get(chosen)

