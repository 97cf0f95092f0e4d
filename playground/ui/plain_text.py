"""Other people's text (run, class and display names) inside Streamlit markdown, shown exactly as typed."""

from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def escape_markdown(text: str) -> str:
    """`text` with every ASCII punctuation character backslash-escaped, so markdown shows it literally.

    Unescaped, `[x](url)` would become a link, `![x](url)` an image fetched
    from anywhere, `:red[x]` coloured text and `$x$` a formula.

    Args:
        text: one line from someone else, e.g. a run name from another session.

    Returns:
        The markdown that displays `text` unchanged.
    """
    return _PUNCTUATION.sub(r"\\\1", str(text))
