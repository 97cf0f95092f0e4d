"""The Compare runs page: the run history as a table, overlaid curves, ensembles, rename and delete.

Every saved run is listed (damaged folders too, with the reason). The table
adds one column per spec field that differs between the runs chosen for
comparison; their loss and accuracy curves are drawn on shared axes. Runs of
one task (same dataset, class names and input shape) can be averaged into an
ensemble whose test accuracy is shown next to each member's.

Renaming and deleting: on a server without PLAYGROUND_TEACHER_CODE every run
may be managed; with it, a session manages its own runs, and the teacher code
unlocks the others (runs saved from the command line among them). Run names
come from other sessions too: they are shown as plain text, and an imported
run's numbers as its bundle's claims.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from playground.analysis import metric_figures
from playground.data.dataset import DatasetError
from playground.runs import compare
from playground.runs.ensemble import EnsembleError, EnsembleResult, evaluate_ensemble
from playground.runs.evaluation import EvaluationError
from playground.runs.record import RunRecord
from playground.runs.store import RunStore, RunStoreError
from playground.settings import get_settings
from playground.ui.flash import flash, show_flash
from playground.ui.plain_text import escape_markdown
from playground.ui.run_picker import run_label
from playground.ui.session import current_run_id, session_id, visible_runs

FLASH_PAGE = "compare"  # the page's slot for messages that outlive a rerun (see ui.flash)
ENSEMBLE_KEY = "compare_ensemble_result"
PENDING_DELETE_KEY = "compare_pending_delete"


def render() -> None:
    """Draw the Compare runs page."""
    st.title("Compare runs")
    st.caption("Every run you save stays on disk across restarts. Pick runs to see what differs, overlay their curves, or average them into an ensemble.")
    show_flash(FLASH_PAGE)
    records = visible_runs(include_damaged=True)
    if not records:
        st.info("No saved runs yet: train one on the Playground first.")
        st.stop()
    by_id = {r.run_id: r for r in records if not r.damaged}
    mine = current_run_id() if by_id else None
    # Runs deleted or damaged since the last rerun drop out of the pickers' remembered choices.
    for key in ("compare_runs", "compare_members"):
        if key in st.session_state:
            st.session_state[key] = [i for i in st.session_state[key] if i in by_id]
    label = _labeller(by_id, mine)
    chosen = runs_table(records, by_id, label)
    if chosen:
        curves(chosen, by_id)
    ensemble_section(chosen, by_id, label)
    manage_section(records, mine)


def _labeller(by_id: dict[str, RunRecord], mine: str | None) -> Callable[[str], str]:
    """The label of a run id in the pickers (see `run_picker.run_label`)."""
    return lambda run_id: run_label(by_id[run_id], mine)


def runs_table(records: list[RunRecord], by_id: dict[str, RunRecord], label: Callable[[str], str]) -> list[str]:
    """The runs to compare (picked, newest three by default) and the table of every run; returns the chosen ids.

    Args:
        records: every run, damaged ones included, newest first.
        by_id: the undamaged runs by run id.
        label: the pickers' label of a run id.
    """
    chosen = st.multiselect("Runs to compare", list(by_id), default=list(by_id)[:3], format_func=label, key="compare_runs")
    fields = compare.differing_fields([by_id[i].spec for i in chosen])
    rows = [{"compare": r.run_id in chosen, **compare.run_row(r, fields)} for r in records]
    rows.sort(key=lambda row: not row["compare"])  # the chosen runs on top, then newest first
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "compare": st.column_config.CheckboxColumn("✓", width="small"),
            "test accuracy": st.column_config.NumberColumn(format="%.4f"),
            "train seconds": st.column_config.NumberColumn(format="%.1f"),
            "images/s": st.column_config.NumberColumn(format="%.0f"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "epochs trained": st.column_config.NumberColumn(format="%d"),
        },
    )
    if len(chosen) >= 2:
        st.caption(
            f"Spec fields that differ between the chosen runs: {', '.join(fields)}." if fields
            else "The chosen runs have identical specs (differences come from training noise only)."
        )
    damaged = [r for r in records if r.damaged]
    if damaged:
        st.warning(f"{len(damaged)} run folder(s) cannot be used and are listed as damaged: "
                   + escape_markdown("; ".join(f"{r.run_id}: {r.damaged}" for r in damaged[:5])) + ("; ..." if len(damaged) > 5 else ""))
    st.caption(f"Each run also writes TensorBoard logs: `tensorboard --logdir {get_settings().runs_dir}` shows every run's curves.")
    return chosen


def curves(chosen: list[str], by_id: dict[str, RunRecord]) -> None:
    """The loss and accuracy curves of the chosen runs on shared axes (equal names told apart by their id)."""
    st.subheader("Curves")
    names: dict[str, str] = {}
    for run_id in chosen:
        name = by_id[run_id].name or run_id
        names[run_id] = name if name not in names.values() else f"{name} ({run_id[-4:]})"
    st.plotly_chart(metric_figures.overlay_figure({names[i]: by_id[i].history for i in chosen}), key="compare_overlay")


def ensemble_section(chosen: list[str], by_id: dict[str, RunRecord], label: Callable[[str], str]) -> None:
    """Pick members (by default the largest group of chosen runs of one task), evaluate them together, show the result."""
    st.subheader("Ensemble")
    st.caption("Average the output probabilities of several runs of the same task on the test set. Different runs make partly different "
               "mistakes, so the average is often better than every member.")
    group = [r.run_id for r in compare.largest_task_group([by_id[i] for i in chosen])]
    members = st.multiselect("Members", list(by_id), default=group if len(group) >= 2 else [], format_func=label, key="compare_members")
    if st.button("Evaluate the ensemble", key="compare_ensemble", disabled=len(members) < 2):
        try:
            with st.spinner("Predicting the test set with each member (cached per run)..."):
                result = evaluate_ensemble([by_id[i] for i in members])
            st.session_state[ENSEMBLE_KEY] = (tuple(members), result)
        except (EnsembleError, DatasetError, EvaluationError, RunStoreError) as exc:
            st.session_state.pop(ENSEMBLE_KEY, None)
            st.error(escape_markdown(str(exc)))  # it may quote run names
    saved = st.session_state.get(ENSEMBLE_KEY)
    if saved and saved[0] == tuple(members):
        ensemble_result(saved[1])
    elif len(members) < 2:
        st.caption("Choose two or more runs trained on the same dataset.")


def ensemble_result(result: EnsembleResult) -> None:
    """The ensemble's test accuracy against each member's, as a chart, a metric and a table."""
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(metric_figures.ensemble_figure(result.names, result.member_accuracy, result.accuracy), key="compare_ensemble_chart")
    with right:
        st.metric("Ensemble test accuracy", f"{result.accuracy:.2%}", delta=f"{result.gain * 100:+.2f} points vs best member")
        st.caption(f"Every model is scored on the same test images, those of {escape_markdown(repr(result.names[0]))}."
                   + (f" {escape_markdown(', '.join(map(repr, result.other_data)))} drew other shapes (seed or noise), so its "
                      "accuracy here differs from the one saved with it." if result.other_data else ""))
        st.dataframe(
            {"model": [*result.names, "ensemble"], "test accuracy": [*result.member_accuracy, result.accuracy],
             "test loss": [*result.member_loss, result.loss]},
            hide_index=True, column_config={"test accuracy": st.column_config.NumberColumn(format="%.4f"),
                                            "test loss": st.column_config.NumberColumn(format="%.4f")},
        )


def manage_section(records: list[RunRecord], mine: str | None) -> None:
    """Rename or delete one run this session may manage (the teacher code unlocks every run)."""
    st.subheader("Rename or delete")
    settings = get_settings()
    teacher_code = settings.teacher_code
    unlocked = False
    if teacher_code:
        entered = st.text_input("Teacher code (to manage other sessions' runs)", type="password", key="compare_teacher_code")
        unlocked = settings.is_teacher_code(entered)
    me = session_id()
    manageable = {r.run_id: r for r in records if unlocked or compare.may_manage(r, me, protected=bool(teacher_code))}
    if teacher_code and not unlocked:
        st.caption("This server has a teacher code: you can rename and delete the runs of this browser session; "
                   "the teacher code unlocks the others, including runs saved from the command line.")
    if not manageable:
        st.info("None of the saved runs can be changed from this session.")
        return

    def manage_label(run_id: str) -> str:
        r = manageable[run_id]
        return f"{r.run_id} (damaged)" if r.damaged else run_label(r, mine)

    if st.session_state.get("compare_manage_run") not in manageable:
        st.session_state.pop("compare_manage_run", None)
    target_id = st.selectbox("Run", list(manageable), format_func=manage_label, key="compare_manage_run")
    target = manageable[target_id]
    left, right = st.columns(2)
    with left:
        rename(target)
    with right:
        delete(target)


def rename(target: RunRecord) -> None:
    """A new name for `target` (not for a damaged folder)."""
    new_name = st.text_input("New name", value=target.name, max_chars=200, key=f"compare_name_{target.run_id}", disabled=bool(target.damaged))
    if st.button("Rename", key="compare_rename", disabled=bool(target.damaged)):
        try:
            RunStore().rename(target.run_id, new_name)
        except RunStoreError as exc:
            st.error(escape_markdown(str(exc)))  # it quotes the name typed
            return
        flash(FLASH_PAGE, f"Renamed to {escape_markdown(' '.join(new_name.split()))}.")
        st.rerun()


def delete(target: RunRecord) -> None:
    """Delete `target` and its weights, after a confirmation."""
    st.write("")
    st.write("")
    if st.button("Delete…", key="compare_delete"):
        st.session_state[PENDING_DELETE_KEY] = target.run_id
    if st.session_state.get(PENDING_DELETE_KEY) != target.run_id:
        return
    st.warning(f"Delete {escape_markdown(target.name or target.run_id)} and its weights for good?")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary", key="compare_delete_yes"):
        try:
            RunStore().delete(target.run_id)
            flash(FLASH_PAGE, f"Deleted {escape_markdown(target.name or target.run_id)}.")
        except RunStoreError as exc:
            flash(FLASH_PAGE, str(exc), "error")
        st.session_state.pop(PENDING_DELETE_KEY, None)
        st.session_state.pop(ENSEMBLE_KEY, None)
        st.rerun()
    if no.button("Cancel", key="compare_delete_no"):
        st.session_state.pop(PENDING_DELETE_KEY, None)
        st.rerun()
