"""Flash messages: a result written by a button callback, shown once at the top of the next run.

Streamlit reruns the page after a callback, so a callback cannot draw; it
leaves its message here and the page shows it where the user looks.

    flash("compare", "Renamed to 'cats'.")          # in a callback
    show_flash("compare")                           # near the top of the page
"""

from __future__ import annotations

from typing import Literal

import streamlit as st

Kind = Literal["ok", "error"]
_ICONS = {"ok": ":material/check_circle:", "error": ":material/error:"}


def _key(page: str) -> str:
    return f"{page}_flash"


def flash(page: str, message: str, kind: Kind = "ok") -> None:
    """Leave `message` for the next run of `page` (a short page name, e.g. "compare").

    Args:
        page: the page's flash slot; each page has its own.
        message: one sentence.
        kind: "ok" shows a success box, "error" an error box.
    """
    st.session_state[_key(page)] = (kind, message)


def show_flash(page: str) -> None:
    """Show and forget the message left for `page`, if any."""
    left = st.session_state.pop(_key(page), None)
    if left is not None:
        notice(*left)


def notice(kind: Kind, message: str) -> None:
    """One result box: a success box for "ok", an error box for "error"."""
    (st.success if kind == "ok" else st.error)(message, icon=_ICONS[kind])
