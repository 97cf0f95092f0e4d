"""The Class challenge page: the teacher sets a target, students submit their own runs to a live leaderboard.

Opt-in and private by design: a student picks one of the runs trained in
this browser session and a display name; everyone sees only display names
and the numbers in the table (accuracy, parameters, training time, the spec
as a Playground link), never another session's runs, images or ids. The
board re-reads the shared file every few seconds, so new submissions appear
for the whole class without reloading.

Nothing a student types is read as markup: display names sit in the table,
and the teacher's note is shown as plain text. Without a teacher code the
challenge can be set only from the server's own machine, so the first
student to open a served app cannot take it over.
"""

from __future__ import annotations

import streamlit as st

from playground.data.catalog import CATALOG, dataset_title
from playground.runs.compare import accuracy_text
from playground.runs.leaderboard import (
    MAX_NAME_LENGTH,
    Challenge,
    ChallengeBoard,
    ChallengeError,
)
from playground.runs.record import RunRecord
from playground.runs.store import RunStore
from playground.ui.flash import flash, show_flash
from playground.ui.plain_text import escape_markdown
from playground.ui.session import session_id

FLASH_PAGE = "challenge"  # the page's slot for messages that outlive a rerun (see ui.flash)
REFRESH_SECONDS = 3  # how often the leaderboard re-reads the shared file
_PROXY_HEADERS = ("X-Forwarded-For", "X-Real-Ip", "Forwarded")  # set by a reverse proxy that passes on a browser elsewhere


def render() -> None:
    """Draw the Class challenge page."""
    st.title("Class challenge")
    st.caption("The teacher sets a target; everyone trains on the Playground and may put their best run on the board. "
               "The board updates live for the whole class.")
    board = ChallengeBoard()
    me = session_id()
    try:
        target = board.challenge()
    except ChallengeError as exc:
        st.error(str(exc))
        st.stop()
    show_flash(FLASH_PAGE)
    if target:
        st.markdown(f"### :material/flag: Target: {target.describe()}")
        if target.note:
            st.text(target.note)  # the teacher's words, never markup
    else:
        st.info("No challenge has been set yet. The teacher sets one under “Teacher: set the challenge” below.")
    leaderboard(board, me)
    submit_section(board, target, me)
    with st.expander("Teacher: set the challenge", expanded=target is None):
        teacher_section(board, target)


@st.fragment(run_every=REFRESH_SECONDS)
def leaderboard(board: ChallengeBoard, me: str) -> None:
    """The board, re-read from disk every few seconds (only this part of the page reruns)."""
    try:
        entries = board.entries(me)
    except ChallengeError as exc:
        st.error(str(exc))
        return
    st.subheader(f"Leaderboard ({len(entries)})")
    if not entries:
        st.caption("No submissions yet.")
        return
    rows = [
        {
            "rank": i,
            "name": f"{e.display_name} (you)" if e.mine else e.display_name,
            "test accuracy": e.accuracy,
            "parameters": e.params,
            "train seconds": e.train_seconds,
            "meets target": e.meets_target,
            "spec": e.playground_link,
        }
        for i, e in enumerate(entries, start=1)
    ]
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            "test accuracy": st.column_config.NumberColumn(format="%.4f"),
            "parameters": st.column_config.NumberColumn(format="localized"),
            "train seconds": st.column_config.NumberColumn(format="%.1f"),
            "meets target": st.column_config.CheckboxColumn(),
            "spec": st.column_config.LinkColumn("spec", display_text="open in Playground",
                                                help="The run's settings as a Playground link: train it yourself."),
        },
    )
    st.caption("Test accuracy is measured on this server, on the challenge's test set, whatever a run's own numbers say. "
               "Ranked by test accuracy, then fewer parameters, then shorter training (blank: an imported run, "
               f"its training time unknown). Refreshes every {REFRESH_SECONDS} s.")


def own_run_label(record: RunRecord, target: Challenge | None) -> str:
    """A run of this session in the picker: name, dataset, accuracy, parameters, and whether it seems to meet the target.

    The board measures the accuracy again on submission; an imported run's
    accuracy is only its bundle's claim, so it is never said to meet the target.
    """
    acc, params = record.metrics.get("test_accuracy", float("nan")), int(record.metrics.get("params", 0))
    meets = target is not None and not record.imported and target.is_met(record.spec.data.dataset, acc, params)
    return (f"{record.name} · {record.spec.data.dataset} · {accuracy_text(record)} · {params:,} parameters"
            + (" · meets the target" if meets else ""))


def submit_section(board: ChallengeBoard, target: Challenge | None, me: str) -> None:
    """A student puts one of this session's runs on the board under a display name, or takes it off."""
    st.subheader("Submit one of your runs")
    st.caption("Optional. Only your display name and the numbers in the table are shared; the board never shows session ids, "
               "run folders or images. You can take your entry off again.")
    own = [r for r in RunStore().list_runs(owner=me) if not r.damaged]
    if not own:
        st.info("You have no runs from this browser session yet: train one on the Playground, then come back.")
        return
    by_id = {r.run_id: r for r in own}
    on_board = board.submitted_run_ids(own, me)
    chosen = st.selectbox("Your run", list(by_id), format_func=lambda run_id: own_run_label(by_id[run_id], target),
                          key="challenge_run")
    if chosen in on_board:
        st.caption("This run is on the board; submitting it again changes its display name.")
    name = st.text_input(f"Display name (1-{MAX_NAME_LENGTH} characters, shown to everyone)", max_chars=MAX_NAME_LENGTH, key="challenge_name")
    left, right, _ = st.columns([1, 2, 4])
    if left.button("Submit", type="primary", key="challenge_submit", disabled=target is None):
        try:
            with st.spinner("Scoring your run on the challenge's test set (once per run)..."):
                entry = board.submit(by_id[chosen], name, me)
        except ChallengeError as exc:
            st.error(escape_markdown(str(exc)))  # it may quote the display name
        else:
            flash(FLASH_PAGE, f"Submitted as {escape_markdown(entry.display_name)} with {entry.accuracy:.2%} measured test accuracy"
                  + (": it meets the target!" if entry.meets_target else "."))
            st.rerun()
    if chosen in on_board and right.button("Take this run off the board", key="challenge_withdraw"):
        board.withdraw(by_id[chosen], me)
        flash(FLASH_PAGE, "Your entry was taken off the board.")
        st.rerun()


def on_this_machine() -> bool:
    """Whether this browser runs on the server's own machine: connected from localhost, not through a proxy.

    Streamlit gives the address of a browser elsewhere as text, and none for localhost.
    """
    headers = st.context.headers
    return not isinstance(st.context.ip_address, str) and not any(name in headers for name in _PROXY_HEADERS)


def teacher_section(board: ChallengeBoard, target: Challenge | None) -> None:
    """Who may change the challenge, the form that sets it, and clearing the board.

    Without any teacher code, only a browser on the server's own machine may
    set the challenge (and choose a code): on a served app the first student
    to open the page could otherwise lock the teacher out.
    """
    if board.code_from_environment():
        st.caption("Changes need the teacher code set on the server (PLAYGROUND_TEACHER_CODE).")
    elif board.code_required():
        st.caption("Changes need the teacher code chosen when the challenge was set.")
    elif not on_this_machine():
        st.warning("This server has no teacher code, so the challenge can be set only from the server's own machine. "
                   "Teacher: start the app with `python -m playground serve --classroom` (it prints a teacher code), "
                   "or set PLAYGROUND_TEACHER_CODE.", icon=":material/lock:")
        return
    else:
        st.caption("⚠️ No teacher code is set, so anyone using this machine may change the challenge (browsers elsewhere "
                   "cannot). Choose a code below, or start the server with PLAYGROUND_TEACHER_CODE, to protect it.")
    challenge_form(board, target or Challenge("mnist", 0.99, 100_000))
    st.divider()
    clear_board(board)


def challenge_form(board: ChallengeBoard, current: Challenge) -> None:
    """The target's dataset, accuracy, parameter budget and note, and the teacher code, starting from `current`."""
    with st.form("challenge_form"):
        names = list(CATALOG)
        dataset = st.selectbox("Dataset", names, index=names.index(current.dataset), format_func=dataset_title)
        min_acc = st.number_input("Minimum test accuracy (%)", 0.0, 100.0, value=round(current.min_accuracy * 100, 2), step=0.1, format="%.2f")
        max_params = st.number_input("Most parameters (0 = no limit)", 0, 50_000_000, value=current.max_params, step=1000)
        note = st.text_input("Note to the class (optional)", value=current.note, max_chars=200)
        code = st.text_input("Teacher code", type="password") if board.code_required() else ""
        new_code = "" if board.code_from_environment() else st.text_input(
            "New teacher code (optional; protects later changes)", type="password")
        if st.form_submit_button("Set the challenge", type="primary"):
            try:
                board.set_challenge(Challenge(dataset, round(min_acc / 100, 6), int(max_params), note.strip()),
                                    code=code, new_code=new_code or None)
            except ChallengeError as exc:
                st.error(str(exc))
            else:
                flash(FLASH_PAGE, "The challenge is set for everyone on this server.")
                st.rerun()


def clear_board(board: ChallengeBoard) -> None:
    """Remove every submission, after a confirmation (and the teacher code when one is required)."""
    st.markdown("**Clear the board** (for a new lesson or a new target)")
    clear_code = st.text_input("Teacher code", type="password", key="challenge_clear_code") if board.code_required() else ""
    confirm = st.checkbox("Yes, remove every submission", key="challenge_clear_confirm")
    if st.button("Clear the leaderboard", key="challenge_clear", disabled=not confirm):
        try:
            removed = board.clear_entries(code=clear_code)
        except ChallengeError as exc:
            st.error(str(exc))
        else:
            flash(FLASH_PAGE, f"Removed {removed} submission(s).")
            st.session_state.pop("challenge_clear_confirm", None)
            st.rerun()
