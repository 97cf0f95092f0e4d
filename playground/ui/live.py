"""The live view of a training job: status, the living network diagram, curves, speed and ETA.

`sync(job_id)` drains the job's events into the session's RunProgress; the
Playground calls it on every full run and, through `live_panel`, from a
fragment that reruns twice a second while the job trains (five times until its first
trained batch, every 2 s while it is queued). The network diagram and the views
under the curves are `network_panel`'s.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from playground.training import events
from playground.training.jobs import FINAL_STATES, JobError, JobInfo, duration_words
from playground.training.progress import RunProgress, format_duration
from playground.ui import network_panel
from playground.ui.network_panel import NetworkSetting
from playground.ui.plain_text import escape_markdown
from playground.ui.session import job_manager, session_id

PROGRESS_KEY = "pg_progress"  # RunProgress of the current model
JOB_KEY = "pg_job"  # id of the session's latest job
SEEN_FINAL_KEY = "pg_seen_final"  # job id whose end was already handled
SHOWN_STATE_KEY = "pg_shown_state"  # (job id, state) the buttons were last drawn for
FULL_RUN_KEY = "pg_in_full_run"  # True while the whole page runs (not just the live fragment)
REFRESH_KEY = "pg_refresh_seconds"  # the live fragment's refresh period, as last drawn
JUST_STARTED_KEY = "pg_just_started"  # id of a new model's job that a Train or Step click just submitted

LIVE_REFRESH_SECONDS = 0.5  # refresh period of the live panel while a job trains
QUEUED_REFRESH_SECONDS = 2.0  # ... and while it waits in the queue
STARTING_REFRESH_SECONDS = 0.2  # ... and while it starts, until its first trained batch
FIRST_POINT_WAIT_SECONDS = 0.8  # how long the page run after Train waits for the first point

TRAIN_COLOR = "#1f77b4"
VAL_COLOR = "#ff7f0e"


def progress() -> RunProgress:
    """The session's RunProgress (created empty on first use)."""
    if PROGRESS_KEY not in st.session_state:
        st.session_state[PROGRESS_KEY] = RunProgress()
    return st.session_state[PROGRESS_KEY]


def current_job() -> JobInfo | None:
    """The session's latest job, or None (never trained, reset, or forgotten by the server)."""
    job_id = st.session_state.get(JOB_KEY)
    if not job_id:
        return None
    try:
        return job_manager().info(session_id(), job_id)
    except JobError:
        return None


def sync() -> JobInfo | None:
    """Drain the latest job's events into the progress; returns the job's snapshot."""
    job = current_job()
    if job is None:
        return None
    try:
        progress().update(job_manager().drain(session_id(), job.job_id))
    except JobError:
        return None
    # The snapshot after draining, so a "done" job comes with all of its events applied.
    return current_job()


def _curve_figure(title: str, p: RunProgress, train_key: str, val_key: str, batch_index: int, y_title: str) -> go.Figure:
    # NumPy arrays: Plotly checks them at once, where lists are checked value by value
    # (this figure is rebuilt twice a second for every training session).
    traces = []
    if p.batch_points:
        points = np.asarray(p.batch_points, dtype=np.float64)
        points = points[:: max(1, len(points) // 600)]  # a few hundred points draw the same line
        # A line needs two points: the first point alone (the untrained model's) is drawn as a dot.
        # SVG, not WebGL: a few hundred points draw as fast, and browsers allow few WebGL contexts.
        traces.append(go.Scatter(x=points[:, 0], y=points[:, batch_index], mode="lines" if len(points) > 1 else "markers",
                                 name="train (batches)", line={"color": TRAIN_COLOR, "width": 1},
                                 marker={"color": TRAIN_COLOR, "size": 6}, opacity=0.35 if len(points) > 1 else 0.8,
                                 cliponaxis=len(points) > 1))  # the dot at epoch 0 shows whole, not cut by the axis
    history = p.history()
    if history["epoch"]:
        epochs = np.asarray(history["epoch"], dtype=np.float64)
        for key, name, color in ((train_key, "train", TRAIN_COLOR), (val_key, "validation", VAL_COLOR)):
            traces.append(go.Scatter(x=epochs, y=np.asarray(history[key], dtype=np.float64), mode="lines+markers",
                                     name=name, line={"color": color, "width": 2}))
    upper = max(p.epochs, int(np.ceil(p.batch_points[-1][0])) if p.batch_points else 1, 1)
    layout = {
        "title": {"text": title, "x": 0.0, "font": {"size": 14}},
        "height": 270, "margin": {"l": 10, "r": 10, "t": 36, "b": 10},
        "xaxis": {"title": {"text": "epoch"}, "range": [0, upper]},
        "yaxis": {"title": {"text": y_title}, **({"range": [0, 1.02], "tickformat": ".0%"} if "accuracy" in train_key else {})},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        "uirevision": title,  # keep the user's zoom while points arrive
    }
    return go.Figure(data=traces, layout=layout)


def compiling(job: JobInfo | None, p: RunProgress) -> bool:
    """True while a running job has not trained its first batch (TensorFlow traces and compiles the step)."""
    return job is not None and job.state == "running" and p.step == 0 and p.epoch == p.job_first_epoch


def status_text(job: JobInfo | None, p: RunProgress) -> str:
    """One line under the transport buttons."""
    if job is None:
        return "Ready: press Train." if not p.epoch_rows else f"Trained {p.epoch} epoch(s): press Train to continue, Reset to start over."
    if job.state == "queued":
        return (f"Queued: position {job.queue_position} of {job.queue_length}; the server trains "
                f"{job_manager().max_concurrent} run(s) at a time, and a student's next run waits behind "
                f"everyone's first.")
    if job.state == "starting" and not job.worker_ready:
        return "Starting: the training process is loading TensorFlow…"
    if job.state == "starting":
        return "Starting: loading the data and building the network…"
    if job.state == "stopping":
        return "Stopping after the current batch…"
    if job.state == "paused":
        return (f"Paused after epoch {p.epoch} of {p.epochs}: Train resumes, Step runs one more epoch; after "
                f"{duration_words(job_manager().pause_timeout)} paused, the run stops and keeps its model.")
    if compiling(job, p):
        return "Starting: TensorFlow is compiling the network for its first batch…"
    if job.state == "running":
        where = f" (on {job.where})" if job.where else ""
        return f"Training: epoch {min(p.epoch + 1, max(p.epochs, 1))} of {p.epochs}{where}."
    if job.state == "done" and not job.stop_note:
        reason = job.result.summary.stop_reason if job.result else "completed"
        return {"completed": "Done.", "stopped": "Stopped early; the model so far was evaluated and kept.",
                "time_budget": "Time budget reached; the model so far was evaluated and kept.",
                "diverged": "The loss diverged; the last good weights were kept."}.get(reason, "Done.")
    return job.status_line[:1].upper() + job.status_line[1:]


def metrics_row(job: JobInfo | None, p: RunProgress) -> None:
    """Epoch counter, images/second, ETA and queue position."""
    columns = st.columns(4)
    columns[0].metric("Epoch", f"{p.epoch} / {p.epochs}" if p.epochs else "–")
    columns[1].metric("Images / second", f"{p.images_per_second:,.0f}" if p.images_per_second else "–")
    active = job is not None and job.state in ("running", "starting")
    columns[2].metric("Time left", format_duration(p.eta_seconds()) if active else "–")
    if job is not None and job.state == "queued":
        columns[3].metric("Queue position", f"{job.queue_position} of {job.queue_length}")
    else:
        last = p.epoch_rows[-1] if p.epoch_rows else {}
        value = last.get("val_accuracy")
        columns[3].metric("Validation accuracy", f"{value:.1%}" if value is not None and np.isfinite(value) else "–")


def curves(p: RunProgress) -> None:
    """Loss and accuracy, train and validation, side by side."""
    left, right = st.columns(2)
    left.plotly_chart(_curve_figure("Loss", p, "loss", "val_loss", 1, "loss"), key="pg_loss_chart",
                      config={"displayModeBar": False})
    right.plotly_chart(_curve_figure("Accuracy", p, "accuracy", "val_accuracy", 2, "accuracy"), key="pg_accuracy_chart",
                       config={"displayModeBar": False})


def result_panel(job: JobInfo) -> None:
    """Test accuracy and the other numbers of a finished job."""
    if job.result is None:
        return
    summary = job.result.summary
    columns = st.columns(4)
    columns[0].metric("Test accuracy", f"{summary.test_accuracy:.1%}")
    columns[1].metric("Test loss", f"{summary.test_loss:.3f}")
    columns[2].metric("Training time", format_duration(summary.train_seconds))
    columns[3].metric("Parameters", f"{summary.params:,}")
    if job.result.save_error:
        st.warning(escape_markdown(job.result.save_error), icon=":material/warning:")
    elif job.result.message:
        st.info(escape_markdown(job.result.message))


def await_first_point(job: JobInfo | None) -> bool:
    """Right after Train started a new model, wait briefly for its first point (once per job).

    A warm worker sends the untrained model's point within a few tenths of a
    second, so the page run that answers the click can draw it, instead of a
    later refresh of the live panel.

    Args:
        job: the session's latest job, as the page run sees it.

    Returns:
        True when the point is waiting to be drained.
    """
    if job is None or st.session_state.pop(JUST_STARTED_KEY, None) != job.job_id:
        return False
    if job.state not in ("starting", "running") or not job.worker_ready or progress().batch_points:
        return False  # a fresh worker still imports TensorFlow: the live panel's refreshes show the point
    try:
        return job_manager().wait_for_event(session_id(), job.job_id, events.Batch, FIRST_POINT_WAIT_SECONDS)
    except JobError:
        return False


def shown_state(job: JobInfo | None) -> tuple[str, str] | None:
    """What the transport buttons depend on: the job and its state ("starting" counts as "running")."""
    if job is None:
        return None
    return job.job_id, "running" if job.state == "starting" else job.state


def live_body(on_final: Any, setting: NetworkSetting) -> None:
    """Everything that changes while a job trains (run inside a fragment).

    Args:
        on_final: called with the JobInfo when the job has just ended; it
            makes the run the session's current model.
        setting: the network the page shows (from its last full run).
    """
    if network_panel.follow_edit() and not st.session_state.get(FULL_RUN_KEY):
        st.rerun()  # a + or − button changed the network: the sidebar, the URL and the layer table follow
    owner = session_id()
    job_manager().heartbeat(owner)
    job = sync()
    p = progress()
    status = st.empty()
    status.markdown(f"**{escape_markdown(status_text(job, p))}**")  # the click's acknowledgement, sent at once
    if await_first_point(job):  # ... then, right after Train, the untrained model's point on the curves
        job = sync()
        status.markdown(f"**{escape_markdown(status_text(job, p))}**")
    if job is not None and job.active and p.epochs:
        st.progress(p.fraction_done)
    setting = replace(setting, active=job is not None and job.active)
    shown = network_panel.network_section(p, setting)
    metrics_row(job, p)
    if job is not None and job.state == "queued" and not p.epoch_rows:
        st.caption("The curves appear here when training starts.")
    else:  # a queued continuation keeps showing the curves it continues
        curves(p)
    network_panel.views_panel(p, setting, shown)
    if job is None or st.session_state.get(FULL_RUN_KEY):
        return  # the whole page is being drawn for the job as it is now
    if not job.active and st.session_state.get(SEEN_FINAL_KEY) != job.job_id:
        on_final(job)
        st.rerun()  # show the result and the buttons for a finished job
    elif st.session_state.get(SHOWN_STATE_KEY) != shown_state(job):
        st.rerun()  # the job moved on (queued -> running, paused, resumed): redraw the buttons for it
    elif st.session_state.get(REFRESH_KEY) != refresh_seconds(job):
        st.rerun()  # e.g. the first batch trained: a new fragment at the calmer rate


def refresh_seconds(job: JobInfo | None) -> float | None:
    """How often the live panel refreshes for `job`: None when nothing can change on its own.

    A training job refreshes twice a second (five times until its first trained batch,
    so the untrained model's point shows at once). A queued one only waits for its turn, so
    it asks every few seconds: with a class queued on one server, their polls would
    otherwise keep the server too busy to answer pages.
    """
    if job is None or job.state in FINAL_STATES or job.state == "paused":
        return None
    if job.state == "queued":
        return QUEUED_REFRESH_SECONDS
    # Until the first trained batch, look more often, so the first point shows as soon as it
    # exists (switching rates redraws the whole page, so not at that point but at the next).
    starting = job.state == "starting" or compiling(job, progress())
    return STARTING_REFRESH_SECONDS if starting else LIVE_REFRESH_SECONDS


def live_panel(job: JobInfo | None, on_final: Any, setting: NetworkSetting) -> None:
    """`live_body` in a fragment that refreshes as `refresh_seconds(job)` says."""
    st.session_state[FULL_RUN_KEY] = True
    st.session_state[REFRESH_KEY] = refresh_seconds(job)
    try:
        st.fragment(run_every=st.session_state[REFRESH_KEY])(live_body)(on_final, setting)
    finally:
        st.session_state[FULL_RUN_KEY] = False
