"""AppTest of the Predict and Your data pages: uploads, one-line errors, the cached model, imports."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.runs.bundle import export_bundle, export_keras_file
from playground.model.network import build_model
from playground.runs.store import RunStore
from playground.settings import get_settings
from playground.spec.presets import preset_spec
from playground.training.loop import TrainResult

ROOT = Path(__file__).resolve().parents[1]
PREDICT = "pages/7_Predict.py"
YOUR_DATA = "pages/9_Your_data.py"
CLASSES = ("circle", "square", "triangle", "cross", "ring")


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


def _save_run(owner: str | None = None):
    """A small network on the shapes dataset's shape, saved in this test's runs folder."""
    spec = preset_spec("default", "shapes").with_values(filters="4,8", dense_units="16")
    model = build_model(spec, (28, 28, 1), len(CLASSES))
    result = TrainResult(model=model, history={"loss": [1.0]}, test_loss=1.0, test_accuracy=0.6, epochs_completed=1,
                         train_seconds=1.0, images_per_second=10.0, stop_reason="completed", message="",
                         params=model.count_params(), initial_first_conv=None)
    info = {"name": "shapes", "class_names": CLASSES, "input_shape": (28, 28, 1)}
    return RunStore().save(result, spec, info, name="shapes run", owner=owner), model


_COMPONENTS: list = []  # Streamlit's registry of installed custom components, found once per module


def _app(page: str) -> AppTest:
    """The whole multipage app, on `page` (so links between pages resolve as in the browser)."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    # Each AppTest scans every installed package for custom components (seconds on 2 cores);
    # the result does not change between tests, so the first scan is reused.
    if _COMPONENTS and hasattr(at, "_bidi_component_manager"):
        at._bidi_component_manager = _COMPONENTS[0]
    at.switch_page(page)
    return at


def _run(at: AppTest) -> AppTest:
    at.run()
    if not _COMPONENTS and getattr(at, "_bidi_component_manager", None) is not None:
        _COMPONENTS.append(at._bidi_component_manager)
    return at


def test_predict_page_without_runs_offers_the_import():
    at = _run(_app(PREDICT))
    assert not at.exception
    assert any("import a bundle" in i.value for i in at.info)
    assert at.file_uploader(key="import_bundle") is not None


def test_upload_camera_and_export_in_one_session():
    _save_run()
    at = _run(_app(PREDICT))
    assert not at.exception
    (loaded,) = at.session_state["predict_predictors"].values()
    # The Keras code of the architecture is offered, and it is Python.
    (code,) = [c.value for c in at.code]
    compile(code, "exported.py", "exec")

    digit = np.full((80, 80), 255, np.uint8)
    digit[20:60, 35:45] = 0
    files = [
        ("stroke.png", _png(digit), "image/png"),
        ("notes.png", b"shopping list: milk, eggs\n", "image/png"),
        ("photo.jpg", _jpeg(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8)), "image/jpeg"),
        ("empty.gif", b"", "image/gif"),
    ]
    at.file_uploader(key="predict_files").set_value(files).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "notes.png: this is a text file, not an image, whatever its .png name says.",
        "empty.gif: the file is empty (0 bytes).",
    ]
    headlines = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(headlines) == 2
    # File and class names are escaped markdown: shown exactly as named (no italics from "_", no links).
    assert headlines[0].startswith("**stroke\\.png** → **") and any(c in headlines[0] for c in CLASSES)
    assert headlines[1].startswith("**photo\\.jpg** → **")
    assert any("inverted" in c.value for c in at.caption)  # a dark stroke on white met a light-on-dark dataset
    assert list(at.dataframe[0].value["image"]) == ["stroke.png", "photo.jpg"]
    # The colour noise photo, sent to a network trained on the gray shapes, is called unfamiliar; each
    # preparation step of each picture is there to look at.
    assert [w.value for w in at.warning if "colour picture" in w.value] == [
        "This picture looks unlike the training images (a colour picture, where the network saw only gray images), "
        "so the answer may mean nothing."]
    assert [e.label for e in at.expander].count("Step by step") == 2

    # A photo from the camera, in the same session: the model was loaded once.
    at.toggle(key="predict_camera_on").set_value(True).run()
    at.camera_input(key="predict_camera").set_value(("photo.jpg", _jpeg(np.full((48, 64, 3), 200, np.uint8)), "image/jpeg")).run()
    assert not at.exception
    assert any(m.value.startswith("**camera photo** → **") for m in at.markdown)
    (again,) = at.session_state["predict_predictors"].values()
    assert again is loaded


def test_bundle_import_on_the_page_and_keras_files_refused():
    run, model = _save_run(owner="someone else")
    bundle_bytes = export_bundle(run)
    at = _run(_app(PREDICT))
    at.file_uploader(key="import_bundle").set_value(("shapes.bundle.zip", bundle_bytes, "application/zip")).run()
    assert not at.exception
    assert any("Imported shapes.bundle.zip" in s.value for s in at.success)
    mine = RunStore().list_runs(owner=at.session_state["pg_owner"])
    assert len(mine) == 1 and mine[0].class_names == CLASSES and mine[0].name == "shapes run (imported)"
    assert at.selectbox(key="predict_run").value == mine[0].run_id  # the imported run is selected
    # Its accuracy is the bundle's claim, labelled so, never a measured number.
    assert any(o.startswith("shapes run (imported) · shapes · claimed 60.0% · ") for o in at.selectbox(key="predict_run").options)
    assert any("not measured on this server (claimed 60.0%)" in c.value for c in at.caption)

    at.file_uploader(key="import_bundle").set_value(("model.keras", export_keras_file(model), "application/octet-stream")).run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("model.keras is a Keras model file, which is refused because loading one can run code")
    assert len(RunStore().list_runs()) == 2  # nothing more was saved


def _bars_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _class_files(classes: tuple[str, ...], per_class: int) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {f"pets/{c}/{i}.png": _png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for c in classes for i in range(per_class)}


def test_your_data_page_imports_a_zip_and_links_to_the_playground():
    files = _class_files(("cat", "dog", "fish"), 10)
    files["pets/readme.txt"] = b"my pets"
    files["pets/cat/notes.txt"] = b"not an image"
    at = _run(_app(YOUR_DATA))
    assert not at.exception
    at.file_uploader(key="your_data_upload").set_value(("pets.zip", _bars_zip(files), "application/zip")).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "3"
    assert metrics["Skipped files"] == "2"
    assert int(metrics["Training images"]) + int(metrics["Test images"]) == 30
    (link,) = at.get("page_link")
    assert link.proto.label == "Train on this dataset"
    saved = Path(at.session_state["your_data_uploads"].popitem()[1][0])
    assert saved.parent.parent == get_settings().uploads_dir and saved.suffix == ".npz"  # in this session's folder
    assert link.proto.page == "Playground"
    assert link.proto.query_string == f"dataset={saved.parent.name}%2F{saved.name}&preset=default"


def test_your_data_page_explains_bad_uploads_in_one_line():
    cases = [
        ("evil.zip", _bars_zip({"../../etc/cat/1.png": b"x", "dog/1.png": b"y"}), "points outside the archive"),
        ("lonely.zip", _bars_zip({**_class_files(("cat",), 5), "pets/dog/1.png": _png(np.zeros((16, 16, 3), np.uint8))}), "dog"),
        ("photo.png", _png(np.zeros((4, 4), np.uint8)), "not a .zip or .npz"),
        ("broken.zip", b"PK\x03\x04 not really", "not a readable .zip"),
    ]
    at = _run(_app(YOUR_DATA))
    for name, data, message in cases:
        at.file_uploader(key="your_data_upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception
        (error,) = [e.value for e in at.error]
        assert error.startswith(name) and message in error and "\n" not in error
        assert not at.get("page_link")
