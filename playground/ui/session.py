"""Who this browser session is, its jobs, and the run it trained last.

Pages use `session_id()` as the owner of jobs and runs, `client_address()`
for the computer behind it (all its tabs share it), `current_run_id()` for the
session's latest trained model, `visible_runs()` for the saved runs it may see,
and `job_manager()` for background training.
"""

from __future__ import annotations

import uuid

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from playground.model.cost import RateCalibration
from playground.runs.record import RunRecord
from playground.training.jobs import JobManager, get_manager

_OWNER_KEY = "pg_owner"
_RUN_KEY = "pg_run_id"


# Owner id -> Streamlit's own id of that browser session, so the job manager can ask
# Streamlit whether the session is still connected.
_streamlit_sessions: dict[str, str] = {}


def session_id() -> str:
    """A stable, unguessable id of this browser session (the owner of its jobs and runs)."""
    if _OWNER_KEY not in st.session_state:
        st.session_state[_OWNER_KEY] = uuid.uuid4().hex
    owner = st.session_state[_OWNER_KEY]
    ctx = get_script_run_ctx()
    if ctx is not None:
        _streamlit_sessions[owner] = ctx.session_id
    return owner


def client_address() -> str | None:
    """The network address of this browser as the server sees it; None on the server's own machine (localhost).

    Every tab and session of one computer shares it, so the job manager caps the
    runs in progress per address (`settings.jobs_per_client`).
    """
    return st.context.ip_address


def _is_connected(owner: str) -> bool | None:
    # Streamlit's session table is safe to read from any thread; None = cannot tell.
    streamlit_id = _streamlit_sessions.get(owner)
    if streamlit_id is None or not runtime.exists():
        return None
    try:
        return bool(runtime.get_instance().is_active_session(streamlit_id))
    except Exception:
        return None


def job_manager() -> JobManager:
    """The server's JobManager, told how to see whether a session is still connected."""
    manager = get_manager()
    manager.set_liveness(_is_connected)
    return manager


@st.cache_resource
def rate_calibration() -> RateCalibration:
    """The server's training speed, learnt from finished runs, for the epoch-time estimates."""
    return RateCalibration()


def touch() -> None:
    """Heartbeat only when the job manager already runs (cheap; for every page of the app)."""
    from playground.training import jobs

    manager = jobs.running_manager()
    if manager is not None:
        manager.heartbeat(session_id())


def set_current_run(run_id: str | None) -> None:
    """Remember `run_id` as the session's current model (None forgets it)."""
    st.session_state[_RUN_KEY] = run_id


def current_run_id() -> str | None:
    """The run this session trained last: the Playground's current model, else its newest saved run."""
    run_id = st.session_state.get(_RUN_KEY)
    if run_id:
        return run_id
    if _RUN_KEY in st.session_state:
        return None  # reset on purpose
    from playground.runs.store import RunStore

    mine = [r for r in RunStore().list_runs(owner=session_id()) if not r.damaged]  # newest first
    return mine[0].run_id if mine else None


def visible_runs(include_damaged: bool = False) -> list[RunRecord]:
    """The saved runs this session may see, newest first.

    All of them on a personal server; with PLAYGROUND_PRIVATE_RUNS=1 (a class on one
    server) only this session's own runs and the runs saved from the command line
    (which have no owner: the teacher's).

    Args:
        include_damaged: also list unreadable run folders (only where every run is visible,
            since a damaged folder's owner cannot be read).
    """
    from playground.runs.store import RunStore
    from playground.settings import get_settings

    records = RunStore().list_runs()
    if get_settings().private_runs:
        me = session_id()
        return [r for r in records if not r.damaged and r.owner in (me, None)]
    return records if include_damaged else [r for r in records if not r.damaged]
