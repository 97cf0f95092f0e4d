"""Uploaded datasets: decoded in a child process, stored per session, within quotas, swept and cleared."""

import io
import os
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from playground.child_process import ChildFailed, run_in_child
from playground.data.dataset import DatasetError
from playground.data.datasets import load_dataset
from playground.data.uploads import clear_uploads, delete_upload, import_upload, list_uploads, sweep_partial_files


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PLAYGROUND_PRIVATE_RUNS", raising=False)
    return tmp_path / "data"


def _zip_of_classes(value: int = 0, per_class: int = 3, side: int = 8) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for c, name in enumerate(("cat", "dog")):
            for i in range(per_class):
                image = io.BytesIO()
                Image.new("L", (side, side), (value + 40 * c + 7 * i) % 256).save(image, "PNG")
                z.writestr(f"{name}/{i}.png", image.getvalue())
    return buffer.getvalue()


def test_upload_is_stored_in_its_sessions_folder_and_loads(data_dir):
    data = _zip_of_classes()
    path = import_upload(data, "my pets.zip", owner="session-a")
    assert path.parent.parent == data_dir / "uploads" and path.name.startswith("my_pets-")
    assert import_upload(data, "my pets.zip", owner="session-a") == path  # same bytes, same file
    assert load_dataset(str(path)).class_names == ("cat", "dog")


def test_private_runs_keep_uploads_private_to_their_session(monkeypatch):
    mine = import_upload(_zip_of_classes(1), "mine.zip", owner="session-a")
    theirs = import_upload(_zip_of_classes(2), "theirs.zip", owner="session-b")
    assert {u.path for u in list_uploads("session-a")} == {mine.resolve(), theirs.resolve()}
    monkeypatch.setenv("PLAYGROUND_PRIVATE_RUNS", "1")
    listed = list_uploads("session-a")
    assert [(u.path, u.label, u.mine) for u in listed] == [(mine.resolve(), "mine", True)]


def test_an_upload_over_the_sessions_quota_is_refused_and_not_kept(monkeypatch, data_dir):
    monkeypatch.setenv("PLAYGROUND_UPLOAD_QUOTA_MB", "1")
    import_upload(_zip_of_classes(per_class=200, side=40), "first.zip", owner="session-a")  # 0.6 MB stored
    with pytest.raises(DatasetError, match="no room for this upload: your uploads would take more than 1 MB"):
        import_upload(_zip_of_classes(5, per_class=200, side=40), "second.zip", owner="session-a")
    assert [u.label for u in list_uploads("session-a")] == ["first"]
    import_upload(_zip_of_classes(5, per_class=200, side=40), "second.zip", owner="session-b")  # another session has room


def test_all_uploads_together_have_a_quota(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_UPLOADS_TOTAL_MB", "1")
    import_upload(_zip_of_classes(per_class=200, side=40), "first.zip", owner="session-a")
    with pytest.raises(DatasetError, match="all uploads on this server would take more than 1 MB"):
        import_upload(_zip_of_classes(9, per_class=200, side=40), "second.zip", owner="session-b")


def test_bad_uploads_get_one_sentence_from_the_child_process():
    with pytest.raises(DatasetError, match=r"^broken\.zip is not a readable \.zip archive"):
        import_upload(b"PK\x03\x04 but not really", "broken.zip", owner="s")
    with pytest.raises(DatasetError, match="is not a .zip or .npz; zip a folder"):
        import_upload(b"hello", "notes.txt", owner="s")


def test_child_process_limits_memory_and_time():
    with pytest.raises(ChildFailed, match="ran out of memory"):
        run_in_child(np.ones, 4 * 1024**3, timeout=60, memory_mb=1024)
    with pytest.raises(ChildFailed, match="longer than 1 seconds"):
        run_in_child(time.sleep, 30, timeout=1, memory_mb=1024)
    assert run_in_child(sum, [1, 2, 3], timeout=60, memory_mb=1024) == 6


def test_half_written_files_are_swept_and_old_uploads_cleared(data_dir):
    kept = import_upload(_zip_of_classes(), "kept.zip", owner="s")
    old = import_upload(_zip_of_classes(3), "old.zip", owner="s")
    long_ago = time.time() - 40 * 86400
    os.utime(old, (long_ago, long_ago))
    partial, fresh = data_dir / "cache" / ".x.abc.part", data_dir / "uploads" / ".y.def.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    fresh.write_bytes(b"being written now")
    os.utime(partial, (long_ago, long_ago))
    assert sweep_partial_files() == 1 and not partial.exists() and fresh.exists()
    count, freed = clear_uploads(older_than_days=30)
    assert count == 1 and freed > 0 and not old.exists() and kept.exists()


def test_a_session_deletes_only_its_own_uploads():
    mine = import_upload(_zip_of_classes(), "mine.zip", owner="session-a")
    with pytest.raises(DatasetError, match="not one of your uploads"):
        delete_upload(mine, "session-b")
    delete_upload(mine, "session-a")
    assert list_uploads("session-a") == []
