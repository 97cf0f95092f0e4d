"""The Your data page: upload a .zip of class folders (or a .npz), look at it, and train on it.

The upload is checked and read by `ui.uploads.import_dataset` (with
`data.uploads.import_upload` (in a child process): path traversal, zip bombs, too
many files and classes with too few images are refused with one message) and saved as a .npz under the uploads folder, the only place a
Playground link may point at. "Train on this dataset" opens the Playground
with `?dataset=<file name>`, which the Playground resolves inside the uploads
folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from playground.data import folders as folder_datasets
from playground.data.dataset import Dataset, DatasetError
from playground.data.datasets import load_dataset
from playground.data.uploads import clear_uploads, delete_upload, folder_bytes, list_uploads
from playground.settings import get_settings
from playground.ui import uploads
from playground.ui.flash import flash, show_flash
from playground.ui.session import session_id

if TYPE_CHECKING:
    from streamlit.runtime.uploaded_file_manager import UploadedFile

SAMPLES_PER_CLASS = 8  # example images shown per class
MAX_CLASSES_SHOWN = 20  # classes with example rows (the chart shows all)
SAMPLE_SIDE = 64  # pixels per example image on screen
_UPLOADS_KEY = "your_data_uploads"  # {file_id: (path or None, message)} of this session


def render() -> None:
    """Draw the Your data page."""
    st.title("Your data")
    st.write(
        "Train on your own pictures: zip a folder with **one sub-folder per class** (optionally split into "
        "`train/` and `test/` folders) and upload it. A `.npz` with `x_train`, `y_train`, `x_test`, `y_test` works too."
    )
    with st.expander("Layout of the zip"):
        st.code("pets.zip\n  cat/  001.jpg 002.jpg ...\n  dog/  001.jpg ...\n\nor\n\npets.zip\n  train/cat/...  train/dog/...\n  test/cat/...   test/dog/...", language="text")
    show_flash("your_data")
    upload = uploads.file_uploader(uploads.dataset_label_with_limit(), key="your_data_upload")
    if upload is None:
        st.caption("Nothing uploaded yet.")
    else:
        path, message = import_upload(upload)
        if path is None:
            st.error(message, icon=":material/block:")
        else:
            st.success(f"{upload.name} is ready to train on.")
            try:
                show_dataset(Path(path))
            except DatasetError as exc:
                st.error(str(exc).splitlines()[0], icon=":material/block:")
    your_uploads()
    teacher_cleanup()


def your_uploads() -> None:
    """This session's stored uploads, their disk use against the quota, and deleting one."""
    mine = [u for u in list_uploads(session_id()) if u.mine]
    if not mine:
        return
    settings = get_settings()
    st.subheader("Your uploads")
    used = sum(u.size for u in mine)
    st.caption(f"{used / 1024**2:,.1f} MB of your {settings.upload_quota_mb:,} MB. Uploads stay on this server until "
               "you delete them or the teacher clears old ones.")
    st.dataframe({"dataset": [u.label for u in mine], "MB": [round(u.size / 1024**2, 2) for u in mine]},
                 hide_index=True)
    by_path = {str(u.path): u for u in mine}
    left, right = st.columns([3, 1])
    chosen = left.selectbox("Upload", list(by_path), format_func=lambda p: by_path[p].label, key="your_data_delete_pick")
    right.button("Delete", key="your_data_delete", on_click=_delete_upload, args=(chosen,), icon=":material/delete:")


def _delete_upload(path: str) -> None:
    try:
        delete_upload(Path(path), session_id())
    except DatasetError as exc:
        flash("your_data", str(exc), "error")
        return
    flash("your_data", f"Deleted {Path(path).name}.")


def teacher_cleanup() -> None:
    """The teacher frees disk space: uploads and runs not changed for some days are deleted."""
    settings = get_settings()
    with st.expander("Teacher: free disk space"):
        if not settings.teacher_code:
            st.caption("Start the server with a teacher code (PLAYGROUND_TEACHER_CODE, or `python -m playground serve "
                       "--classroom`) to clear old uploads and runs from here.")
            return
        code = st.text_input("Teacher code", type="password", key="your_data_teacher_code")
        days = st.slider("Not changed for at least (days)", 1, 90, 30, key="your_data_clear_days")
        st.caption(f"All uploads take {folder_bytes(settings.uploads_dir) / 1024**2:,.0f} MB of "
                   f"{settings.uploads_total_mb:,} MB; all runs {folder_bytes(settings.runs_dir) / 1024**2:,.0f} MB "
                   f"of {settings.runs_total_mb:,} MB.")
        left, right = st.columns(2)
        clear = {"uploads": left.button("Clear old uploads", key="your_data_clear", icon=":material/delete_sweep:"),
                 "runs": right.button("Clear old runs", key="your_data_clear_runs", icon=":material/delete_sweep:")}
        if not any(clear.values()):
            return
        if not settings.is_teacher_code(code):
            st.error("The teacher code is wrong, so nothing was deleted.", icon=":material/block:")
        elif clear["uploads"]:
            count, freed = clear_uploads(older_than_days=days)
            st.success(f"Deleted {count} upload(s), {freed / 1024**2:,.1f} MB.")
        else:
            from playground.runs.store import RunStore  # (TensorFlow: only when a teacher clears runs)

            count, freed = RunStore().clear_older_than(days)
            st.success(f"Deleted {count} run(s), {freed / 1024**2:,.1f} MB.")


def import_upload(upload: UploadedFile) -> tuple[Path | None, str]:
    """Import one uploaded file once per session: (saved path, "") or (None, one-line reason)."""
    done: dict = st.session_state.setdefault(_UPLOADS_KEY, {})
    if upload.file_id not in done:
        try:
            done[upload.file_id] = (uploads.import_dataset(upload.getvalue(), upload.name), "")
        except DatasetError as exc:
            done[upload.file_id] = (None, str(exc).splitlines()[0])
    return done[upload.file_id]


def class_count_chart(ds: Dataset) -> go.Figure:
    """Training and test images per class, stacked bars."""
    classes = list(ds.class_names)
    train = np.bincount(ds.y_train, minlength=len(classes))
    test = np.bincount(ds.y_test, minlength=len(classes))
    figure = go.Figure([
        go.Bar(name="training", x=classes, y=train, marker_color="#4c78a8"),
        go.Bar(name="test", x=classes, y=test, marker_color="#f58518"),
    ])
    figure.update_layout(barmode="stack", height=300, margin={"l": 4, "r": 4, "t": 10, "b": 4},
                         yaxis_title="images", legend={"orientation": "h"})
    return figure


def sample_row(ds: Dataset, class_index: int) -> np.ndarray | None:
    """Up to SAMPLES_PER_CLASS training images of a class side by side: uint8 (side, n * side, 3)."""
    picks = np.flatnonzero(ds.y_train == class_index)[:SAMPLES_PER_CLASS]
    if picks.size == 0:
        return None
    images = ds.x_train[picks]  # (n, H, W, C)
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    factor = max(1, SAMPLE_SIDE // max(images.shape[1:3]))
    images = np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
    gap = np.full((images.shape[1], 4, 3), 255, np.uint8)
    return np.concatenate([part for image in images for part in (image, gap)][:-1], axis=1)


def show_dataset(path: Path) -> None:
    """The saved dataset: its counts, images per class, the link to train on it, and example images."""
    ds = load_dataset(str(path))
    h, w, c = ds.input_shape
    cols = st.columns(5)
    cols[0].metric("Classes", ds.num_classes)
    cols[1].metric("Training images", f"{len(ds.x_train):,}")
    cols[2].metric("Test images", f"{len(ds.x_test):,}")
    cols[3].metric("Image size", f"{h}x{w} {'gray' if c == 1 else 'RGB'}")
    cols[4].metric("Skipped files", ds.skipped, help="Files that are not readable images, or lie outside the class folders.")
    st.caption(
        f"Class names come from the folder names. A test/ folder is used for testing when the zip has one; otherwise "
        f"{folder_datasets.TEST_FRACTION:.0%} of each class is held out (the same images for every run). Images are "
        f"resized to the most common size, at most {folder_datasets.MAX_IMAGE_SIDE}x{folder_datasets.MAX_IMAGE_SIDE}."
    )
    st.plotly_chart(class_count_chart(ds), key="your_data_counts")
    st.page_link(
        "pages/1_Playground.py", label="Train on this dataset", icon=":material/rocket_launch:",
        query_params={"dataset": path.resolve().relative_to(get_settings().uploads_dir.resolve()).as_posix(),
                      "preset": "default"},
    )
    st.subheader("Examples")
    for index, name in enumerate(ds.class_names[:MAX_CLASSES_SHOWN]):
        row = sample_row(ds, index)
        if row is not None:
            st.image(row, caption=name)
    if ds.num_classes > MAX_CLASSES_SHOWN:
        st.caption(f"Examples are shown for the first {MAX_CLASSES_SHOWN} of {ds.num_classes} classes.")
