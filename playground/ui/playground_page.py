"""The Playground page: controls -> ExperimentSpec -> background training -> live view.

Layout: the sidebar holds the preset picker and the controls (data,
preprocessing & augmentation, architecture, training); the main area holds the
transport buttons (Train, Pause, Step, Reset, Stop), the probe image picker,
the live view with the network diagram at its centre (drawn before training,
live while it trains, edited with its + and − buttons), and the network's
layer table, which follows the sliders before any training.

The configuration is mirrored into the URL, so a copied link reproduces it.
Text from people (link values, dataset names in messages) is shown as plain text.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import streamlit as st

from playground.data.catalog import BUILT_IN, CATALOG, data_key, is_named_dataset
from playground.model import cost
from playground.settings import get_settings
from playground.spec.experiment import DataSpec, ExperimentSpec, TrainSpec, field_names
from playground.spec.url import read_url, url_params
from playground.spec.validation import Problem, check
from playground.training.events import ProbeImage
from playground.training.jobs import JobError, JobInfo, budget_problem
from playground.training.progress import RunProgress
from playground.ui import controls, home, live
from playground.ui.flash import flash, show_flash
from playground.ui.network_panel import NetworkSetting
from playground.ui.plain_text import escape_markdown
from playground.ui.probe_picker import probe_picker, probe_source
from playground.ui.session import (
    client_address,
    job_manager,
    rate_calibration,
    session_id,
    set_current_run,
)

FLASH_PAGE = "pg"  # the page's slot for messages from button callbacks (see ui.flash)
INIT_KEY = "pg_initialised"
URL_MESSAGES_KEY = "pg_url_messages"
RUN_SPEC_KEY = "pg_run_spec"  # spec of the current model (for Train to continue it)
URL_WRITTEN_KEY = "pg_url_written"  # the query parameters this page wrote last
PROBE_SENT_KEY = "pg_probe_sent"  # (job id, ProbeImage) last sent to a running job
LOST_KEY = "pg_lost_runs"  # what a restart of the server ended of this browser's runs, shown once


# ------------------------------------------------------------------ data


@st.cache_data(ttl=30, show_spinner=False)
def dataset_status() -> dict[str, Any]:
    """{name: DatasetStatus} of the named datasets (re-checked every 30 s)."""
    from playground.data import datasets

    return {status.name: status for status in datasets.dataset_status()}


def data_shape(spec: ExperimentSpec) -> tuple[tuple[int, int, int] | None, int | None, str]:
    """(input_shape, num_classes, error) of the spec's data, without a download.

    Named datasets, built-ins included, have known shapes and class counts, so
    nothing is loaded or drawn on the web server (with a class on one server,
    each session's own seed of the shapes would otherwise be drawn again and
    again); an uploaded dataset is read (and cached) once.
    """
    from playground.data import datasets

    name = spec.data.dataset
    if is_named_dataset(name):
        return CATALOG[name].input_shape, CATALOG[name].num_classes, ""
    try:
        dataset = datasets.load_dataset(name, shapes_noise=spec.data.shapes_noise, seed=spec.seed)
    except datasets.DatasetError as exc:
        return None, None, str(exc)
    return tuple(dataset.input_shape), int(dataset.num_classes), ""


def train_size(spec: ExperimentSpec) -> int | None:
    """Training images the spec's dataset has (before sampling and the validation split); None when unreadable."""
    from playground.data import datasets

    name = spec.data.dataset
    if name in CATALOG:
        return CATALOG[name].train_size
    try:
        return len(datasets.load_dataset(name, shapes_noise=spec.data.shapes_noise, seed=spec.seed).x_train)
    except datasets.DatasetError:
        return None


def network_rows(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[dict[str, Any]]:
    """The layer table of `spec`'s untrained network (cached; raises ValueError/RuntimeError when it cannot be built)."""
    key_spec = architecture_key(spec)
    return layer_rows(key_spec.spec_id(), key_spec, tuple(input_shape), int(num_classes))


def network_flops(spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> float | None:
    """Forward FLOPs per image of `spec`'s network (from the cached layer table); None when it cannot be built."""
    try:
        return float(sum(row["flops"] for row in network_rows(spec, input_shape, num_classes)))
    except (ValueError, RuntimeError):
        return None


@st.cache_data(max_entries=256, show_spinner="Building the network…")
def layer_rows(spec_id: str, _spec: ExperimentSpec, input_shape: tuple[int, int, int], num_classes: int) -> list[dict[str, Any]]:
    """The layer table of an untrained model of `_spec` (pure, so cached by its architecture's spec_id)."""
    from playground.model.network import build_model, layer_table

    return [asdict(row) for row in layer_table(build_model(_spec, input_shape, num_classes))]


def architecture_key(spec: ExperimentSpec) -> ExperimentSpec:
    """The part of a spec that decides the untrained network's layers."""
    return replace(spec, data=DataSpec(dataset="shapes"), train=TrainSpec(), seed=0, preset="default")


def same_model(a: ExperimentSpec | None, b: ExperimentSpec) -> bool:
    """True when a model trained with `a` can keep training under `b` (only training settings differ)."""
    return a is not None and replace(a, train=b.train, preset=b.preset) == b


# ------------------------------------------------------------- callbacks


def _start(step: bool) -> None:
    spec = controls.current_spec()
    run_id = st.session_state.get("pg_run_id")
    continue_from = run_id if run_id and same_model(st.session_state.get(RUN_SPEC_KEY), spec) else None
    try:
        input_shape, num_classes, _ = data_shape(spec)
        estimate = training_estimate(spec, input_shape, num_classes)
        job_id = job_manager().submit(session_id(), spec, continue_from=continue_from, step=step,
                                      client=client_address(), estimated_seconds=estimate[1] if estimate else None)
    except JobError as exc:
        flash(FLASH_PAGE, str(exc), "error")
        return
    if continue_from is None:
        st.session_state[live.PROGRESS_KEY] = RunProgress()
        st.session_state[live.JUST_STARTED_KEY] = job_id
    st.session_state[live.JOB_KEY] = job_id


def _job_call(method: str, **kwargs: Any) -> None:
    job = live.current_job()
    if job is None:
        return
    try:
        getattr(job_manager(), method)(session_id(), job.job_id, **kwargs)
    except JobError as exc:
        flash(FLASH_PAGE, str(exc), "error")


def on_train() -> None:
    """Train: resume a paused job, else continue the current model, else start a new one."""
    job = live.current_job()
    if job is not None and job.state == "paused":
        _job_call("resume")
    elif job is None or not job.active:
        _start(step=False)


def on_pause() -> None:
    """Pause: stop after the current batch, keeping weights and optimizer state."""
    _job_call("pause")


def on_step() -> None:
    """Step: one epoch, then pause (starting or continuing a model when none is training)."""
    job = live.current_job()
    if job is not None and job.active:
        _job_call("step")
    else:
        _start(step=True)


def on_reset() -> None:
    """Reset: throw the model away; the next Train starts from new weights."""
    job = live.current_job()
    if job is not None and job.active:
        _job_call("stop", discard=True)
    st.session_state[live.PROGRESS_KEY] = RunProgress()
    st.session_state[live.JOB_KEY] = None
    st.session_state[RUN_SPEC_KEY] = None
    set_current_run(None)


def on_stop() -> None:
    """Stop: end the job now; the model so far is evaluated and saved."""
    _job_call("stop")


def on_final(job: JobInfo) -> None:
    """A job just ended: make its run the session's current model, and learn the server's speed from it."""
    st.session_state[live.SEEN_FINAL_KEY] = job.job_id
    speed = job.result.summary.images_per_second if job.result is not None else None
    if speed:
        input_shape, num_classes, error = data_shape(job.spec)
        flops = None if error else network_flops(job.spec, input_shape, num_classes)
        if flops is not None:  # a network that cannot be rebuilt here teaches nothing about the speed
            rate_calibration().record(flops, speed)
    if job.run_id:  # done, or stopped with its last saved epoch (a checkpoint)
        set_current_run(job.run_id)
        st.session_state[RUN_SPEC_KEY] = job.spec


# ----------------------------------------------------------------- views


def transport(spec: ExperimentSpec, problems: list[Problem], job: JobInfo | None) -> Any:
    """The five buttons, each enabled only when it can act.

    Returns:
        An empty slot under the buttons for the epoch-time estimate, or None when
        no estimate belongs there (training, or Train disabled).
    """
    state = job.state if job is not None else None
    active = job is not None and job.active
    st.session_state[live.SHOWN_STATE_KEY] = live.shown_state(job)
    blocked = problems[0].message if problems else ""
    progress = live.progress()
    slot = None
    columns = st.columns(5)
    columns[0].button("Train", key="pg_train", type="primary", on_click=on_train, width="stretch",
                      disabled=bool(blocked) or (active and state != "paused"),
                      help=blocked or "Start training; after a pause or a finished run, continue the same model.")
    columns[1].button("Pause", key="pg_pause", on_click=on_pause, width="stretch",
                      disabled=state not in ("starting", "running"), help="Pause after the current batch.")
    columns[2].button("Step", key="pg_step", on_click=on_step, width="stretch",
                      disabled=(bool(blocked) and not active) or state == "stopping",
                      help="Train one epoch, then pause.")
    columns[3].button("Reset", key="pg_reset", on_click=on_reset, width="stretch",
                      disabled=not active and not progress.epoch_rows and not st.session_state.get("pg_run_id"),
                      help="Throw the model away; the next Train starts from new weights.")
    columns[4].button("Stop", key="pg_stop", on_click=on_stop, width="stretch",
                      disabled=not active or state == "stopping", help="End training now and keep the model so far.")
    if blocked:
        st.error(f"Train is disabled: {escape_markdown(blocked)}", icon=":material/block:")
    elif not active:
        if st.session_state.get("pg_run_id") and not same_model(st.session_state.get(RUN_SPEC_KEY), spec):
            st.caption("The settings changed the network or its data, so Train starts a new model; the last one stays saved.")
        slot = st.empty()
    return slot


def training_estimate(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None,
                      num_classes: int | None) -> tuple[float, float, int, float] | None:
    """What Train will cost at this server's speed: (seconds per epoch, seconds in all, images per epoch, FLOPs).

    The total is capped by the spec's time budget. None when the data or the network cannot be read.
    """
    if input_shape is None or num_classes is None:
        return None
    size, flops = train_size(spec), network_flops(spec, input_shape, num_classes)
    if size is None or flops is None:
        return None
    images = cost.train_images(size, spec.data.sample_size, spec.data.validation_split)
    seconds = cost.epoch_seconds(flops, images, rate_calibration().rate(flops))
    total = seconds * spec.train.epochs
    if spec.train.time_budget:
        total = min(total, spec.train.time_budget)
    return seconds, total, images, flops


def budget_problems(estimate: tuple[float, float, int, float] | None) -> list[Problem]:
    """The run's cost (`training_estimate`) against the server's budget per run, as a problem of the epochs slider ([] when it fits)."""
    message = budget_problem(estimate[1] if estimate else None, get_settings().run_budget_minutes * 60)
    return [Problem("epochs", message)] if message else []


def epoch_estimate(slot: Any, spec: ExperimentSpec, estimate: tuple[float, float, int, float] | None) -> None:
    """What Train will cost (`training_estimate`): seconds per epoch and for all epochs, in `slot` under the buttons."""
    if slot is None or estimate is None:
        return
    seconds, total, images, flops = estimate
    basis = "this server's recent runs" if rate_calibration().measured else "a typical 2-core CPU"
    slot.caption(
        f"Estimate: {cost.rough_duration(seconds)} per epoch of {images:,} images, {cost.rough_duration(total)} "
        f"for {spec.train.epochs} epoch(s), plus a few seconds to start ({flops / 1e6:,.1f} MFLOPs per image "
        f"forward, at the speed of {basis})."
    )


def layer_table_view(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None, num_classes: int | None, classroom: bool) -> None:
    """The untrained network's layers: output shape and parameters, following the sliders."""
    st.subheader("Network")
    if input_shape is None or num_classes is None:
        st.caption("The layer table appears once the dataset can be read.")
        return
    try:
        rows = network_rows(spec, input_shape, num_classes)
    except (ValueError, RuntimeError) as exc:
        st.caption(f"This network cannot be built: {exc}")
        return
    table = [{
        "layer": row["name"],
        "output": " × ".join(str(d) for d in row["output_shape"]),
        "params": row["params"],
        **({} if classroom else {"RF": "" if row["receptive_field"] is None else str(row["receptive_field"])}),
    } for row in rows]
    total = sum(row["params"] for row in rows)
    st.caption(f"Input {' × '.join(map(str, input_shape))} · {num_classes} classes · {total:,} parameters")
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 560))


def dataset_notice(spec: ExperimentSpec, job: JobInfo | None, data_error: str) -> None:
    """One clear message when the chosen dataset is not here, with a one-click switch to a built-in one."""
    name = spec.data.dataset
    message = ""
    if job is not None and job.state == "failed" and job.dataset_error and job.spec.data.dataset == name:
        message = job.message
    elif data_error:
        message = data_error
    elif is_named_dataset(name) and name not in BUILT_IN:
        status = dataset_status().get(name)
        if status is not None and not status.available_locally:
            message = (f"{status.title} is not on this server yet, so Train will try to download it (this needs "
                       f"the internet). {status.where}")
    if not message:
        return
    with st.container(border=True):
        st.warning(escape_markdown(message), icon=":material/cloud_off:")
        columns = st.columns(len(BUILT_IN) + 1)
        for column, built_in in zip(columns, BUILT_IN):
            column.button(f"Use {CATALOG[built_in].title}", key=f"pg_switch_{built_in}",
                          on_click=controls.switch_dataset, args=(built_in,))


def copy_link(spec: ExperimentSpec, classroom: bool) -> None:
    """The page's full link in a code box (with a copy button)."""
    from urllib.parse import urlencode

    base = st.context.url or ""
    with st.popover("Copy link", icon=":material/link:"):
        st.caption("This link reproduces the whole configuration, seed included.")
        st.code(f"{base}?{urlencode(url_params(spec, classroom=classroom, uploads_dir=get_settings().uploads_dir))}", language=None, wrap_lines=True)


def other_pages() -> None:
    """Links to the other pages that exist on disk."""
    pages = [p for p in home.page_files() if p.name != "1_Playground.py"]
    if not pages:
        return
    st.markdown("**Look closer at this model:**")
    columns = st.columns(min(len(pages), 4))
    for i, page in enumerate(pages):
        columns[i % len(columns)].page_link(f"pages/{page.name}", label=home.page_title(page),
                                            icon=":material/arrow_forward:")


def _init_from_url() -> None:
    settings = get_settings()
    url = read_url(st.query_params.to_dict(), uploads_dir=settings.uploads_dir)
    controls.init_state(url.spec, url.classroom)
    st.session_state[URL_MESSAGES_KEY] = list(url.messages)
    st.session_state[INIT_KEY] = True


def render() -> None:
    """Draw the Playground page."""
    owner = session_id()
    job_manager().heartbeat(owner)
    params = st.query_params.to_dict()
    # A new link (first visit, or a link from another page) sets the configuration;
    # arriving with no parameters keeps the session's.
    is_new_link = any(name in params for name in field_names()) and params != st.session_state.get(URL_WRITTEN_KEY)
    if INIT_KEY not in st.session_state:  # a new session: runs of this browser that a restart of the server ended
        st.session_state[LOST_KEY] = [lost.notice() for lost in job_manager().lost_jobs(client_address())]
    if INIT_KEY not in st.session_state or is_new_link:
        _init_from_url()
    classroom = st.session_state[controls.CLASSROOM_KEY]
    spec, slots, problems = controls.sidebar_ui(classroom)
    wanted = url_params(spec, classroom=classroom, uploads_dir=get_settings().uploads_dir)
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
    st.session_state[URL_WRITTEN_KEY] = wanted

    title, link = st.columns([5, 1], vertical_alignment="bottom")
    title.title("CNN Playground")
    with link:
        copy_link(spec, classroom)
    st.caption("Move the sliders, press Train, and watch a real convolutional network learn on this machine.")
    messages = st.session_state.get(URL_MESSAGES_KEY) or []
    if messages:
        st.warning("Some settings in the link could not be used:\n\n" + "\n".join(f"- {escape_markdown(m)}" for m in messages),
                   icon=":material/link_off:")
    show_flash(FLASH_PAGE)
    for message in st.session_state.pop(LOST_KEY, []):
        st.warning(escape_markdown(message), icon=":material/restart_alt:")

    job = live.sync()
    if job is not None and not job.active and st.session_state.get(live.SEEN_FINAL_KEY) != job.job_id:
        on_final(job)
    input_shape, num_classes, data_error = data_shape(spec)
    problems = problems + check(spec, input_shape)
    estimate = training_estimate(spec, input_shape, num_classes) if not problems else None
    if not problems:
        problems = budget_problems(estimate)
    unplaced = slots.show(problems)
    for problem in unplaced:
        st.error(escape_markdown(problem.message), icon=":material/error:")
    dataset_notice(spec, job, data_error)
    estimate_slot = transport(spec, problems, job)
    if (job is None or not job.active) and not data_error:
        job_manager().prepare(spec)  # an idle worker loads the data now, so Train need not wait for it

    probe = probe_picker(spec, input_shape)
    send_probe(job, spec, probe)
    live.live_panel(job, on_final, network_setting(spec, input_shape, num_classes, not problems, probe, job))
    main, side = st.columns([3, 2], gap="medium")
    with main:
        if job is not None and job.state == "done":
            live.result_panel(job)
            other_pages()
    with side:
        layer_table_view(spec, input_shape, num_classes, classroom)
    epoch_estimate(estimate_slot, spec, estimate)


def network_setting(spec: ExperimentSpec, input_shape: tuple[int, int, int] | None, num_classes: int | None,
                    buildable: bool, probe: ProbeImage | None, job: JobInfo | None) -> NetworkSetting:
    """What the network diagram needs to know from this run of the page."""
    source = probe_source(spec) if input_shape is not None else None
    run_id = st.session_state.get("pg_run_id")
    return NetworkSetting(
        spec=spec, input_shape=input_shape, num_classes=num_classes,
        buildable=buildable and input_shape is not None and num_classes is not None, probe=probe,
        class_names=source.class_names if source is not None else (), active=job is not None and job.active,
        run_id=run_id if run_id and same_model(st.session_state.get(RUN_SPEC_KEY), spec) else None,
    )


def send_probe(job: JobInfo | None, spec: ExperimentSpec, probe: ProbeImage | None) -> None:
    """Give a job in progress the probe image just picked (once per job and image; only for the job's own data)."""
    if job is None or not job.active or probe is None or data_key(job.spec) != data_key(spec):
        return
    sent = st.session_state.get(PROBE_SENT_KEY)
    if sent is not None and sent[0] == job.job_id and sent[1] is probe:
        return
    try:
        job_manager().set_probe(session_id(), job.job_id, probe)
    except JobError:
        return
    st.session_state[PROBE_SENT_KEY] = (job.job_id, probe)
