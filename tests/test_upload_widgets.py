"""Upload widgets: every uploader takes any file, and our readers name the file and say in one line why it cannot be used."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.data.dataset import DatasetError
from playground.data.datasets import load_dataset
from playground.settings import get_settings
from playground.ui import uploads

PAGES = Path(__file__).resolve().parents[1] / "pages"


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _class_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c in ("cat", "dog"):
            for i in range(6):
                zf.writestr(f"pets/{c}/{i}.png", _png(i + (10 if c == "dog" else 0)))
    return buffer.getvalue()


def test_import_dataset_takes_a_zip_and_a_npz_by_their_suffix():
    from_zip = uploads.import_dataset(_class_zip(), "Pets.ZIP")
    assert from_zip.parent.parent == get_settings().uploads_dir and from_zip.suffix == ".npz"  # this session's folder
    assert load_dataset(str(from_zip)).class_names == ("cat", "dog")

    ds = load_dataset(str(from_zip))
    buffer = io.BytesIO()
    np.savez(buffer, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    from_npz = uploads.import_dataset(buffer.getvalue(), "pets.npz")
    assert load_dataset(str(from_npz)).num_classes == 2


@pytest.mark.parametrize("name, data, reason", [
    ("photo.png", _png(0), "is not a .zip or .npz"),
    ("notes", b"no suffix at all", "is not a .zip or .npz"),
    ("broken.npz", b"this is not a numpy archive", "not a readable .npz"),
])
def test_import_dataset_refuses_other_files_in_one_line_naming_them(name, data, reason):
    with pytest.raises(DatasetError) as caught:
        uploads.import_dataset(data, name)
    message = str(caught.value).splitlines()[0]
    assert message.startswith(name) and reason in message


def test_the_activations_uploader_takes_any_file_and_explains_one_it_cannot_read():
    at = AppTest.from_file(str(PAGES / "3_Activations.py"), default_timeout=120)
    for key, value in {"dataset": "shapes", "filters": "4,8", "sample_size": "200"}.items():
        at.query_params[key] = value
    at.run()
    at.radio(key="act_image_source").set_value("Upload your own").run()
    assert at.get("file_uploader")[0].proto.type == []  # no type filter: the decoder sees every file
    at.file_uploader(key="act_upload").set_value(("notes.png", b"shopping list: milk, eggs\n", "image/png")).run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("notes.png") and "\n" not in error
    assert not any("The network says" in m.value for m in at.markdown)
