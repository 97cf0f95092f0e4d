"""The home page: what CNN Playground is, which datasets this server has, and where to start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

APP_ROOT = Path(__file__).resolve().parents[2]
PLAYGROUND = "pages/1_Playground.py"

# A first run that needs no download and finishes in seconds on a laptop CPU.
QUICK_START = {"dataset": "shapes", "sample_size": "1000", "filters": "8,16", "conv_blocks": "2", "epochs": "3", "batch_size": "64"}


def datasets_table() -> None:
    """Each named dataset: here already, or downloaded on first use."""
    from playground.data import datasets

    try:
        statuses = datasets.dataset_status()
    except Exception as exc:  # the home page must always open
        st.warning(f"Could not check the datasets: {exc}")
        return
    rows = [{
        "dataset": s.title,
        "name in links": s.name,
        "here": "yes" if s.available_locally else "needs a download",
        "where": s.where,
    } for s in statuses]
    st.table(rows, border="horizontal", hide_index=True)  # a plain HTML table: light for a first visit (no grid scripts to load)
    missing = [s.title for s in statuses if not s.available_locally]
    if missing:
        st.caption(
            f"{', '.join(missing)} will be downloaded on first use, which needs the internet. Offline, put a copy "
            "where the table says, or train on the built-in Shapes and 8x8 digits: they never need a download."
        )


def page_files() -> list[Path]:
    """The screens in pages/, in menu order (by their number prefix)."""
    return sorted((APP_ROOT / "pages").glob("*.py"), key=lambda p: (_order(p.stem), p.name))


def _order(stem: str) -> int:
    prefix = stem.split("_", 1)[0]
    return int(prefix) if prefix.isdigit() else 1_000


def page_title(path: Path) -> str:
    """ "5_Decision_quality.py" -> "Decision quality"."""
    stem = path.stem
    if stem.split("_", 1)[0].isdigit() and "_" in stem:
        stem = stem.split("_", 1)[1]
    return stem.replace("_", " ")


def app_pages() -> list[Any]:
    """The app's navigation: this home page, then every file in pages/."""
    pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
    pages += [st.Page(f"pages/{path.name}", title=page_title(path)) for path in page_files()]
    return pages


def ensure_navigation() -> None:
    """Show the app's own navigation even when this page is the first one opened after a start.

    Call it at the top of a page, after `st.set_page_config`. Because the app
    has a `pages/` folder, Streamlit runs a page opened directly (a shared
    link to /Playground on a fresh server) in its old multipage mode, without
    `streamlit_app.py`, whose `st.navigation` would list "Home" and the pages.
    Declaring the same navigation here switches the server to it for good.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        st.navigation(app_pages())
        # Run the page again at once under that navigation: its widgets then have the identity they keep
        # from now on, so the visitor's first upload or click is not lost to the switch.
        st.rerun()


def page_links() -> None:
    """A link to each page that exists."""
    for path in page_files():
        st.page_link(f"pages/{path.name}", label=page_title(path), icon=":material/arrow_forward:")


def home() -> None:
    """Draw the home page (and start the training workers in the background, so the first Train is quick)."""
    from playground.training.jobs import start_manager

    start_manager()
    st.title("CNN Playground")
    st.markdown(
        "Tinker with a **convolutional neural network** right in your browser: every setting is a slider, "
        "training is real TensorFlow/Keras training on this machine, and you can watch it learn — loss and "
        "accuracy curves, and the feature maps of an image changing epoch by epoch. It is the "
        "[TensorFlow Playground](https://playground.tensorflow.org) idea, for CNNs on images."
    )
    start, other = st.columns([3, 2], gap="large")
    with start:
        st.subheader("Quick start")
        st.markdown(
            "1. Open the **Playground** with the first link below: a small network on the built-in shapes, no download needed.\n"
            "2. Press **Train** and watch the curves and feature maps; **Pause**, **Step** one epoch, **Stop**, "
            "or **Reset** to new weights.\n"
            "3. Move a slider (filters, kernel size, learning rate…) — the layer table follows at once — and train again.\n"
            "4. Pick a **preset** (LeNet-5, mini VGG, mini ResNet…) or switch the dataset.\n"
            "5. **Copy link** shares the exact configuration, seed included; add `classroom=1` to hide advanced controls."
        )
        st.page_link(PLAYGROUND, label="Open the Playground with shapes (trains in seconds)", icon=":material/play_arrow:",
                     query_params=QUICK_START)
        st.page_link(PLAYGROUND, label="Open the Playground with the default network", icon=":material/tune:")
        st.subheader("Datasets")
        datasets_table()
    with other:
        st.subheader("Pages")
        page_links()
        st.subheader("Your own data")
        st.markdown(
            "Upload a `.zip` with one folder per class (optionally inside `train/` and `test/`), or a `.npz` with "
            "`x_train`, `y_train`, `x_test`, `y_test`, in the Playground's **Data** section."
        )
