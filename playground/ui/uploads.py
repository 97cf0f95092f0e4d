"""Every file uploader of the app: its label, and one rule for the file types it takes.

The rule: an uploader takes any file (`type=None`). The widget's own type
filter would refuse a wrong file with a generic browser message, or not let
it be picked at all; our readers instead see every file and say in one line,
naming it, why one cannot be used (the image decoder, the dataset importers
and the bundle reader all do).

    upload = file_uploader(IMAGES, key="predict_files", accept_multiple_files=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from playground.settings import get_settings
from playground.ui.session import session_id

# Images, read by `data.images` (Activations: one image; Predict: several).
IMAGE = "An image file"
IMAGES = "Images (PNG, JPEG, GIF, BMP, TIFF, WebP; several at once)"
# Datasets, read by `data.uploads.import_upload` (Playground sidebar; Your data).
DATASET = "Your own data (.zip of class folders, or .npz)"
DATASET_HELP = ("A .zip with one folder per class (optionally under train/ and test/), or a .npz with "
                "x_train, y_train, x_test, y_test.")
# Bundles, read by `runs.bundle.read_bundle` (Predict's import).
BUNDLE = "A bundle (.zip) exported from CNN Playground"
BUNDLE_HELP = "Only our own bundles are accepted: the network is rebuilt from spec.json and only the HDF5 weights are read."


def dataset_label_with_limit() -> str:
    """The dataset uploader's label with this server's size limit, e.g. "Dataset (...), up to 200 MB"."""
    return f"Dataset (.zip of class folders, or .npz), up to {get_settings().max_upload_mb} MB"


def file_uploader(label: str, *, key: str, **kwargs: Any) -> Any:
    """`st.file_uploader` that takes any file type (see the module docstring).

    Args:
        label: one of the labels above.
        key: the widget key.
        **kwargs: passed on (help, accept_multiple_files, on_change...).

    Returns:
        What `st.file_uploader` returns: an UploadedFile, a list of them, or None.
    """
    return st.file_uploader(label, type=None, key=key, **kwargs)


def import_dataset(data: bytes, name: str) -> Path:
    """Keep an uploaded dataset file (.zip of class folders or .npz) as one of this browser session's datasets.

    Args:
        data: the file's bytes.
        name: the uploaded file's name.

    Returns:
        The stored .npz, to train on.

    Raises:
        DatasetError: with one line naming the file: a wrong type, too large, over a quota, unsafe or unusable.
    """
    from playground.data.uploads import import_upload

    return import_upload(data, name, owner=session_id())
