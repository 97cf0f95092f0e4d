"""AppTest of the Your data page's upload management: a session's own uploads, deleting one, the teacher's clean-up."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.data.uploads import import_upload, list_uploads
from playground.settings import TEACHER_CODE_ENV

ROOT = Path(__file__).resolve().parents[1]
OWNER_KEY = "pg_owner"  # where playground.ui.session keeps this session's id


def _zip(value: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for c, name in enumerate(("cat", "dog")):
            for i in range(3):
                image = io.BytesIO()
                Image.new("L", (8, 8), (value + 50 * c + 9 * i) % 256).save(image, "PNG")
                z.writestr(f"{name}/{i}.png", image.getvalue())
    return buffer.getvalue()


def _page(owner: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "9_Your_data.py"), default_timeout=60)
    at.session_state[OWNER_KEY] = owner
    return at.run()


def test_a_session_sees_and_deletes_only_its_own_uploads():
    import_upload(_zip(1), "mine.zip", owner="session-a")
    import_upload(_zip(2), "theirs.zip", owner="session-b")
    at = _page("session-a")
    assert not at.exception
    assert at.subheader[0].value == "Your uploads"
    assert list(at.dataframe[0].value["dataset"]) == ["mine"]
    at.button(key="your_data_delete").click().run()
    assert not at.exception
    assert [s.value for s in at.success if s.value.startswith("Deleted mine-")]
    assert [u.label for u in list_uploads("session-a") if u.mine] == []
    assert [u.label for u in list_uploads("session-b") if u.mine] == ["theirs"]


def test_the_teacher_clears_old_uploads_with_the_teacher_code(monkeypatch):
    old = import_upload(_zip(3), "old.zip", owner="session-a")
    recent = import_upload(_zip(4), "recent.zip", owner="session-b")
    long_ago = time.time() - 60 * 86400
    os.utime(old, (long_ago, long_ago))

    at = _page("anyone")
    assert "Start the server with a teacher code" in " ".join(c.value for c in at.caption)

    monkeypatch.setenv(TEACHER_CODE_ENV, "owl")
    at = _page("anyone")
    at.text_input(key="your_data_teacher_code").input("wrong")
    at.button(key="your_data_clear").click().run()
    assert at.error[0].value == "The teacher code is wrong, so nothing was deleted." and old.exists()
    at.text_input(key="your_data_teacher_code").input("owl")
    at.button(key="your_data_clear").click().run()
    assert not at.exception
    assert at.success[-1].value.startswith("Deleted 1 upload(s)")
    assert not old.exists() and recent.exists()


def test_the_teacher_clears_old_runs_with_the_teacher_code(monkeypatch):
    from playground.model.network import build_model
    from playground.runs.store import RunStore
    from playground.spec.presets import preset_spec
    from playground.training.loop import TrainResult

    spec = preset_spec("default", "digits").with_values(filters="4", dense_units="8")
    model = build_model(spec, (8, 8, 1), 10)
    result = TrainResult(model=model, history={"loss": [1.0]}, test_loss=1.0, test_accuracy=0.5, epochs_completed=1,
                         train_seconds=1.0, images_per_second=10.0, stop_reason="completed", message="",
                         params=model.count_params(), initial_first_conv=None)
    record = RunStore().save(result, spec, {"name": "digits", "class_names": [str(i) for i in range(10)],
                                            "input_shape": (8, 8, 1)})
    monkeypatch.setenv(TEACHER_CODE_ENV, "owl")
    old = record.path
    long_ago = time.time() - 60 * 86400
    for path in [old, *old.rglob("*")]:
        os.utime(path, (long_ago, long_ago))
    at = _page("anyone")
    at.text_input(key="your_data_teacher_code").input("owl")
    at.button(key="your_data_clear_runs").click().run()
    assert not at.exception
    assert at.success[-1].value.startswith("Deleted 1 run(s)") and not old.exists()
