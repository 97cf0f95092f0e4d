"""Datasets: built-ins, .npz/folder/.zip readers and their safety limits, downloads from a local mirror, splits."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import socket
import stat
import tarfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_corpus import TEXT_FILE, encode, gradient, truncated_jpeg
from playground.data import sources as dataset_sources
from playground.data import datasets
from playground.data import folders as folder_datasets
from playground.data.catalog import CATALOG
from playground.data.sources import REMOTE_FILES, RemoteFile
from playground.data.dataset import Dataset, DatasetError
from playground.data.datasets import load_dataset, split_train_validation
from playground.data.uploads import import_upload
from playground.spec.experiment import DataSpec, ExperimentSpec

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path, monkeypatch):
    """Each test loads datasets afresh, with an empty Keras cache and no system datasets folder."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("PLAYGROUND_MIRROR_URL", raising=False)
    datasets.clear_cache()
    yield
    datasets.clear_cache()


@pytest.fixture
def no_system_datasets(tmp_path, monkeypatch):
    """Hide /usr/share/datasets, so a download is the only way to get a named dataset."""
    monkeypatch.setattr(dataset_sources, "SYSTEM_DATASETS_DIR", tmp_path / "no-system-datasets")


# ---------------------------------------------------------------------------
# Built-in datasets
# ---------------------------------------------------------------------------


def test_shapes_are_deterministic_balanced_and_fast():
    start = time.process_time()
    ds = load_dataset("shapes", shapes_noise=0.3, seed=5)
    elapsed = time.process_time() - start
    # CPU seconds of this process, so other work on a shared machine does not count: about 0.3 s.
    assert elapsed < 1.0
    assert ds.input_shape == (28, 28, 1) and ds.class_names == ("circle", "square", "triangle", "cross", "ring")
    assert len(ds.x_train) == 6000 and len(ds.x_test) == 1000
    assert np.bincount(ds.y_train).tolist() == [1200] * 5
    datasets.clear_cache()
    again = load_dataset("shapes", shapes_noise=0.3, seed=5)
    assert again is not ds and np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_test, ds.y_test)
    other = load_dataset("shapes", shapes_noise=0.3, seed=6)
    assert not np.array_equal(other.x_train, ds.x_train)


def test_shapes_noise_keeps_the_shapes_and_makes_the_task_harder():
    from sklearn.neighbors import KNeighborsClassifier

    clean = load_dataset("shapes", shapes_noise=0.0, seed=0)
    noisy = load_dataset("shapes", shapes_noise=1.0, seed=0)
    assert np.array_equal(clean.y_train, noisy.y_train)
    # Clean images have a black background; noise spreads it out.
    assert np.median(clean.x_train) == 0 and clean.x_train.std() < noisy.x_train.std()
    scores = []
    for ds in (clean, noisy):
        knn = KNeighborsClassifier(3).fit(ds.x_train[:2000].reshape(2000, -1), ds.y_train[:2000])
        scores.append(knn.score(ds.x_test.reshape(len(ds.x_test), -1), ds.y_test))
    assert scores[0] > 0.6  # chance is 0.2: the labels match the pictures
    assert scores[1] < scores[0] - 0.05


def test_shapes_noise_outside_0_1_is_refused():
    with pytest.raises(DatasetError, match=r"shapes_noise=1\.5"):
        load_dataset("shapes", shapes_noise=1.5)


def test_digits_are_8x8_uint8_with_a_fixed_stratified_test_split():
    ds = load_dataset("digits")
    assert ds.input_shape == (8, 8, 1) and ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255
    assert len(ds.x_train) + len(ds.x_test) == 1797 and 340 <= len(ds.x_test) <= 380
    assert np.bincount(ds.y_test).min() >= 34
    datasets.clear_cache()
    assert np.array_equal(load_dataset("digits").y_test, ds.y_test)


def test_datasets_are_cached_and_read_only():
    ds = load_dataset("digits")
    assert load_dataset("digits") is ds
    assert load_dataset("shapes") is load_dataset("shapes", shapes_noise=0.2, seed=0)
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        ds.y_train[0] = 1


def test_load_for_spec_passes_noise_and_seed():
    spec = ExperimentSpec(data=DataSpec(dataset="shapes", shapes_noise=0.5), seed=3)
    assert datasets.load_for_spec(spec) is load_dataset("shapes", shapes_noise=0.5, seed=3)


def test_info_is_plain_json():
    info = load_dataset("digits").info()
    assert json.loads(json.dumps(info)) == info
    assert info["input_shape"] == [8, 8, 1] and info["num_classes"] == 10 and info["skipped"] == 0


def test_prepare_options_follow_the_images():
    # The 8x8 digits fill their frame, centred by box; the built-in shapes fill about two thirds of it.
    assert datasets.prepare_options(load_dataset("digits")) == {"light_on_dark": True, "center": False, "fill": 1.0}
    assert datasets.prepare_options(load_dataset("shapes")) == {"light_on_dark": True, "center": False, "fill": 0.68}


def test_unknown_name_says_what_was_expected():
    with pytest.raises(DatasetError) as info:
        load_dataset("mnits")
    message = str(info.value)
    assert "'mnits'" in message and "fashion_mnist" in message and "no file or folder at" in message


def test_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(DatasetError, match="neither a folder, a .zip nor a .npz"):
        load_dataset(str(path))


# ---------------------------------------------------------------------------
# split_train_validation
# ---------------------------------------------------------------------------


def test_split_is_deterministic_and_stratified():
    ds = load_dataset("shapes")
    first = split_train_validation(ds, 1000, 0.2, seed=1)
    second = split_train_validation(ds, 1000, 0.2, seed=1)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    x_train, y_train, x_val, y_val = first
    assert x_train.shape == (800, 28, 28, 1) and x_val.shape == (200, 28, 28, 1)
    assert y_train.dtype == np.int32 and np.bincount(y_val).tolist() == [40] * 5
    third = split_train_validation(ds, 1000, 0.2, seed=2)
    assert not np.array_equal(third[1], y_train)


def test_split_uses_everything_when_the_sample_is_zero_or_too_large():
    ds = load_dataset("digits")
    n = len(ds.y_train)
    for sample in (0, n, n + 500):
        x_train, y_train, x_val, y_val = split_train_validation(ds, sample, 0.1, seed=0)
        assert len(y_train) + len(y_val) == n and len(y_val) == round(n * 0.1)
        assert np.array_equal(np.sort(np.concatenate([y_train, y_val])), np.sort(ds.y_train))


def test_split_without_validation_gives_empty_arrays_of_the_right_shape():
    ds = load_dataset("digits")
    x_train, y_train, x_val, y_val = split_train_validation(ds, 100, 0.0, seed=0)
    assert x_train.shape == (100, 8, 8, 1)
    assert x_val.shape == (0, 8, 8, 1) and x_val.dtype == np.uint8 and y_val.shape == (0,) and y_val.dtype == np.int32


def test_split_keeps_one_training_image():
    ds = load_dataset("digits")
    x_train, _, x_val, _ = split_train_validation(ds, 1, 0.5, seed=0)
    assert len(x_train) == 1 and len(x_val) == 0
    x_train, _, x_val, _ = split_train_validation(ds, 2, 0.01, seed=0)
    assert len(x_train) == 1 and len(x_val) == 1


@pytest.mark.parametrize("sample,split,word", [(-1, 0.1, "sample_size=-1"), (10, 1.0, "validation_split=1.0"), (2.5, 0.1, "sample_size=2.5")])
def test_split_refuses_bad_arguments(sample, split, word):
    with pytest.raises(ValueError, match=word):
        split_train_validation(load_dataset("digits"), sample, split, seed=0)


# ---------------------------------------------------------------------------
# .npz files
# ---------------------------------------------------------------------------


def _arrays(n_train=20, n_test=10, shape=(6, 5), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
    }


def _save(tmp_path, name="set.npz", **arrays) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_npz_of_gray_uint8_with_class_names(tmp_path):
    arrays = _arrays()
    ds = load_dataset(_save(tmp_path, **arrays, class_names=np.array(["cat", "dog", "eel"])))
    assert ds.name == "set.npz" and ds.input_shape == (6, 5, 1) and ds.class_names == ("cat", "dog", "eel")
    assert np.array_equal(ds.x_train[..., 0], arrays["x_train"]) and ds.y_train.dtype == np.int32


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_npz_float_images_in_either_range_become_uint8(tmp_path, scale):
    arrays = _arrays(shape=(4, 4, 3))
    arrays["x_train"] = arrays["x_train"].astype(np.float32) / 255 * scale
    arrays["x_test"] = arrays["x_test"].astype(np.float64) / 255 * scale
    ds = load_dataset(_save(tmp_path, **arrays))
    assert ds.input_shape == (4, 4, 3)
    assert np.abs(ds.x_train.astype(int) - np.rint(arrays["x_train"] * (255 / scale))).max() <= 1


def test_npz_one_hot_and_column_labels(tmp_path):
    arrays = _arrays()
    arrays["y_train"] = np.eye(3)[arrays["y_train"]]
    arrays["y_test"] = arrays["y_test"].reshape(-1, 1)
    ds = load_dataset(_save(tmp_path, **arrays))
    assert ds.y_train.tolist() == (np.arange(20) % 3).tolist() and ds.class_names == ("0", "1", "2")


@pytest.mark.parametrize(
    "change,words",
    [
        (lambda a: a.pop("y_test"), "lacks y_test"),
        (lambda a: a.update(x_train=np.zeros((20, 6, 5, 2), np.uint8)), "C = 1 or 3"),
        (lambda a: a.update(x_train=np.full((20, 6, 5), 300.0)), "0..1 or 0..255"),
        (lambda a: a.update(y_train=np.arange(7)), "one label per image"),
        (lambda a: a.update(y_train=np.arange(20) - 1), "class indices"),
        (lambda a: a.update(x_test=np.zeros((10, 7, 5), np.uint8)), "differ in image shape"),
        (lambda a: a.update(class_names=np.array(["only one"])), "class_names has 1 names"),
        (lambda a: a.update(y_train=np.zeros(20, int), y_test=np.zeros(10, int)), "single class"),
    ],
)
def test_npz_mistakes_are_explained(tmp_path, change, words):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(DatasetError, match=words):
        load_dataset(_save(tmp_path, **arrays))


def test_npz_with_pickled_objects_is_never_unpickled(tmp_path):
    arrays = _arrays()
    arrays["y_train"] = np.array([object()] * 20, dtype=object)  # would need pickle to load
    with pytest.raises(DatasetError, match="pickled Python objects"):
        load_dataset(_save(tmp_path, **arrays))


def test_npz_that_is_not_a_zip(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_dataset(str(path))


# ---------------------------------------------------------------------------
# Folders and zip archives
# ---------------------------------------------------------------------------


def _png(value: int, size=(12, 10), colour=False) -> bytes:
    """A (height, width) = size image: flat gray `value`, or a colour gradient."""
    h, w = size
    if colour:
        return encode(Image.fromarray(gradient(h, w, seed=value)), "PNG")
    return encode(Image.new("L", (w, h), value), "PNG")


def _make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _class_tree(per_class=5, classes=("bird", "cat", "dog"), prefix="", **image_args) -> dict[str, bytes]:
    return {f"{prefix}{c}/{i:03d}.png": _png(10 * k + i, **image_args) for k, c in enumerate(classes) for i in range(per_class)}


def _zip(files: dict[str, bytes], **options) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data, **options)
    return out.getvalue()


def test_folder_of_classes_with_junk_files(tmp_path):
    files = _class_tree(per_class=10)
    files["cat/notes.txt"] = TEXT_FILE
    files["dog/cut.jpg"] = truncated_jpeg()
    files["dog/empty.png"] = b""
    files["README.md"] = b"# my dataset"
    files["cat/.DS_Store"] = b"\0\1"  # hidden: ignored, not counted
    files["__MACOSX/cat/._001.png"] = b"\0"
    ds = load_dataset(str(_make_tree(tmp_path / "pets", files)))
    assert ds.name == "pets" and ds.class_names == ("bird", "cat", "dog")
    assert ds.skipped == 4  # notes.txt, cut.jpg, empty.png, README.md
    assert ds.input_shape == (12, 10, 1)  # all gray
    assert len(ds.x_train) == 24 and len(ds.x_test) == 6  # 20% of each class held out
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2]


def test_folder_images_are_resized_to_the_most_common_size_and_made_rgb(tmp_path):
    files = _class_tree(per_class=4, classes=("a", "b"), size=(20, 16))
    files["a/odd.png"] = _png(0, size=(40, 50), colour=True)  # one colour image of another size
    ds = load_dataset(str(_make_tree(tmp_path / "mixed", files)))
    assert ds.input_shape == (20, 16, 3)
    gray_image = ds.x_train[ds.y_train == 1][0]
    assert np.array_equal(gray_image[..., 0], gray_image[..., 1])


def test_large_images_are_capped_at_64(tmp_path):
    files = {f"{c}/{i}.png": _png(i, size=(300, 200), colour=True) for c in ("x", "y") for i in range(3)}
    ds = load_dataset(str(_make_tree(tmp_path / "big", files)))
    assert ds.input_shape == (64, 43, 3)


def test_train_and_test_folders_under_a_wrapping_folder(tmp_path):
    files = _class_tree(per_class=3, prefix="my set/train/")
    files.update(_class_tree(per_class=2, classes=("bird", "dog"), prefix="my set/test/"))
    files["my set/train/loose.png"] = _png(1)
    ds = load_dataset(str(_make_tree(tmp_path / "outer", files)))
    assert ds.class_names == ("bird", "cat", "dog") and len(ds.x_train) == 9 and len(ds.x_test) == 4
    assert sorted(set(ds.y_test.tolist())) == [0, 2] and ds.skipped == 1


def test_val_folder_is_the_test_split_when_there_is_no_test_folder(tmp_path):
    files = _class_tree(per_class=3, prefix="train/")
    files.update(_class_tree(per_class=1, prefix="val/"))
    ds = load_dataset(str(_make_tree(tmp_path / "tv", files)))
    assert len(ds.x_train) == 9 and len(ds.x_test) == 3


def test_classes_with_fewer_than_two_images_are_named(tmp_path):
    files = _class_tree(per_class=3, classes=("ant", "bee"))
    files["cow/only.png"] = _png(5)
    files["dog/broken.png"] = TEXT_FILE
    with pytest.raises(DatasetError) as info:
        load_dataset(str(_make_tree(tmp_path / "few", files)))
    assert "'cow' (1)" in str(info.value) and "'dog' (0)" in str(info.value)


def test_test_classes_missing_from_training_are_named(tmp_path):
    files = _class_tree(per_class=3, prefix="train/", classes=("a", "b"))
    files.update(_class_tree(per_class=2, prefix="test/", classes=("a", "zebra")))
    with pytest.raises(DatasetError, match="'zebra'"):
        load_dataset(str(_make_tree(tmp_path / "t", files)))


def test_a_single_class_is_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(str(_make_tree(tmp_path / "one", _class_tree(classes=("solo",)))))


def test_decoded_folders_are_cached_on_disk_until_a_file_changes(tmp_path):
    root = _make_tree(tmp_path / "cached", _class_tree(per_class=3, classes=("a", "b")))
    first = load_dataset(str(root))
    cache_files = list((tmp_path / "data" / "cache").glob("images-*.npz"))
    assert len(cache_files) == 1
    datasets.clear_cache()
    again = load_dataset(str(root))
    assert again.source == str(root) and np.array_equal(again.x_train, first.x_train)
    (root / "a" / "000.png").write_bytes(_png(200))
    os.utime(root / "a" / "000.png", ns=(1, 1))
    datasets.clear_cache()
    changed = load_dataset(str(root))
    assert changed.x_train.max() == 200
    # The new conversion replaced the old one.
    names = [p.name for p in (tmp_path / "data" / "cache").glob("images-*.npz")]
    assert len(names) == 1 and names[0] != cache_files[0].name


def test_zip_reads_like_the_folder(tmp_path):
    files = _class_tree(per_class=5)
    files["cat/notes.txt"] = TEXT_FILE
    folder_ds = load_dataset(str(_make_tree(tmp_path / "pets", files)))
    archive = tmp_path / "pets.zip"
    archive.write_bytes(_zip({f"pets/{k}": v for k, v in files.items()}))
    zip_ds = load_dataset(str(archive))
    assert zip_ds.name == "pets.zip" and zip_ds.skipped == 1 and zip_ds.class_names == folder_ds.class_names
    assert np.array_equal(zip_ds.x_train, folder_ds.x_train) and np.array_equal(zip_ds.y_test, folder_ds.y_test)


@pytest.mark.parametrize("evil", ["../evil.png", "pets/../../evil.png", "/etc/evil.png", "C:\\evil.png", "..\\evil.png"])
def test_zip_entries_outside_the_archive_are_refused(tmp_path, evil):
    files = _class_tree(per_class=3)
    files[evil] = _png(1)
    with pytest.raises(DatasetError, match="points outside the archive"):
        import_upload(_zip(files), "evil.zip")
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_entries_are_refused():
    files = _class_tree(per_class=3)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("cat/link.png")
        link.create_system = 3  # unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        import_upload(out.getvalue(), "links.zip")


def test_zip_bomb_is_refused_before_expanding():
    files = _class_tree(per_class=3)
    files["cat/bomb.png"] = b"\0" * (50 * 1024**2)  # 50 MB of zeros deflate about 1000 times
    data = _zip(files)
    assert len(data) < 1024**2
    with pytest.raises(DatasetError, match="zip bombs"):
        import_upload(data, "bomb.zip")


def test_zip_limits_on_files_and_bytes(monkeypatch):
    # The reader itself (uploads run it in a child process, where this test's patched limits do not reach).
    data = _zip(_class_tree(per_class=10))
    monkeypatch.setattr(folder_datasets, "MAX_FILES", 20)
    with pytest.raises(DatasetError, match="more than the limit of 20"):
        folder_datasets.read_image_zip(data, "many.zip")
    monkeypatch.setattr(folder_datasets, "MAX_FILES", 200_000)
    monkeypatch.setattr(folder_datasets, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DatasetError, match="expands to more than"):
        folder_datasets.read_image_zip(data, "big.zip")


def test_not_a_zip_upload():
    with pytest.raises(DatasetError, match="not a readable .zip"):
        import_upload(b"PK but not really", "fake.zip")


def test_import_zip_saves_a_dataset_npz_under_uploads(tmp_path):
    files = _class_tree(per_class=5)
    files["dog/holiday.heic"] = b"\x00\x00\x00\x18ftypheic" + b"\0" * 40
    data = _zip(files)
    path = import_upload(data, "My Pets!.zip")
    assert path.parent == tmp_path / "data" / "uploads" and path.suffix == ".npz" and path.name.startswith("My_Pets-")
    assert import_upload(data, "My Pets!.zip") == path  # same bytes, same file
    ds = load_dataset(str(path))
    assert ds.class_names == ("bird", "cat", "dog") and ds.skipped == 1 and len(ds.x_train) + len(ds.x_test) == 15


def test_import_npz_checks_before_saving(tmp_path):
    out = io.BytesIO()
    np.savez(out, **_arrays())
    path = import_upload(out.getvalue(), "arrays.npz")
    assert load_dataset(str(path)).input_shape == (6, 5, 1)
    bad = io.BytesIO()
    np.savez(bad, x_train=np.zeros((3, 4, 4)))
    with pytest.raises(DatasetError, match="lacks y_train, x_test, y_test"):
        import_upload(bad.getvalue(), "bad.npz")
    assert [p.name for p in (tmp_path / "data" / "uploads").iterdir()] == [path.name]


def test_uploads_over_the_size_limit_are_refused(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MAX_UPLOAD_MB", "1")
    with pytest.raises(DatasetError, match="over the upload limit of 1 MB"):
        import_upload(b"\0" * (2 * 1024**2), "huge.zip")


# ---------------------------------------------------------------------------
# Named datasets: local copies and downloads from a mirror on 127.0.0.1
# ---------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch, no_system_datasets):
    """A real HTTP server on a free local port serving tmp_path/mirror; PLAYGROUND_MIRROR_URL points at it."""
    root = tmp_path / "mirror"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/datasets"
    (root / "datasets").mkdir()
    monkeypatch.setenv("PLAYGROUND_MIRROR_URL", url)
    yield root / "datasets", url
    server.shutdown()
    server.server_close()


def _publish(folder: Path, name: str, data: bytes, monkeypatch, official: bool = False) -> None:
    """Put a file on the mirror; unless `official`, make it the file the checksum table expects."""
    (folder / name).write_bytes(data)
    if not official:
        remote = REMOTE_FILES[name]
        monkeypatch.setitem(
            REMOTE_FILES, name, RemoteFile(name, remote.url, "sha256", hashlib.sha256(data).hexdigest(), len(data))
        )


def _tiny_mnist() -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    np.savez_compressed(
        out,
        x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        y_train=(np.arange(50) % 10).astype(np.uint8),
        x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        y_test=(np.arange(20) % 10).astype(np.uint8),
    )
    return out.getvalue()


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_mnist_downloads_once_from_the_mirror(mirror, monkeypatch, tmp_path):
    folder, url = mirror
    _publish(folder, "mnist.npz", _tiny_mnist(), monkeypatch)
    ds = load_dataset("mnist")
    assert ds.input_shape == (28, 28, 1) and len(ds.x_train) == 50 and ds.class_names[3] == "3"
    assert f"downloaded from {url}/" in ds.source
    saved = tmp_path / "data" / "mnist.npz"
    assert saved.read_bytes() == (folder / "mnist.npz").read_bytes()
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".part")]
    # Now a local copy: found with the mirror gone.
    (folder / "mnist.npz").unlink()
    datasets.clear_cache()
    assert load_dataset("mnist").source == str(tmp_path / "data")
    status = {s.name: s for s in datasets.dataset_status()}
    assert status["mnist"].available_locally and status["mnist"].where == str(tmp_path / "data")


def test_download_with_the_wrong_checksum_is_discarded(mirror, monkeypatch, tmp_path):
    folder, url = mirror
    _publish(folder, "mnist.npz", _tiny_mnist(), monkeypatch, official=True)  # official table: must not match
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "does not match the official mnist.npz" in message and f"{url}/mnist.npz" in message
    assert not (tmp_path / "data" / "mnist.npz").exists()
    assert not list((tmp_path / "data").glob(".*part"))


def test_download_larger_than_the_official_file_is_cut_off(mirror, monkeypatch):
    folder, _ = mirror
    _publish(folder, "mnist.npz", _tiny_mnist(), monkeypatch)
    monkeypatch.setitem(REMOTE_FILES, "mnist.npz", RemoteFile("mnist.npz", "", "sha256", "0" * 64, 100))
    with pytest.raises(DatasetError, match="larger than the official file"):
        load_dataset("mnist")


def test_fashion_mnist_idx_files_from_the_mirror(mirror, monkeypatch):
    folder, _ = mirror
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    for name, array in {
        "train-images-idx3-ubyte.gz": x_train,
        "train-labels-idx1-ubyte.gz": np.arange(30) % 10,
        "t10k-images-idx3-ubyte.gz": x_test,
        "t10k-labels-idx1-ubyte.gz": np.arange(10),
    }.items():
        _publish(folder, name, _idx(array), monkeypatch)
    ds = load_dataset("fashion_mnist")
    assert ds.x_train.shape == (30, 28, 28, 1) and np.array_equal(ds.x_train[..., 0], x_train)
    assert ds.class_names[-1] == "Ankle boot" and ds.y_test.tolist() == list(range(10))


def _cifar_batch(count: int, label_offset: int) -> bytes:
    records = np.zeros((count, 3073), np.uint8)
    records[:, 0] = (np.arange(count) + label_offset) % 10
    records[:, 1:1025], records[:, 1025:2049], records[:, 2049:] = 10, 20, 30  # red, green, blue planes
    records[:, 1 + 5] = 99  # red value at row 0, column 5
    return records.tobytes()


def _tiny_cifar_archive() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        members = {f"data_batch_{i}.bin": _cifar_batch(4, i) for i in range(1, 6)}
        members["test_batch.bin"] = _cifar_batch(3, 0)
        members["batches.meta.txt"] = b"airplane\nautomobile\n"
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_cifar10_binary_archive_from_the_mirror(mirror, monkeypatch):
    folder, _ = mirror
    _publish(folder, "cifar-10-binary.tar.gz", _tiny_cifar_archive(), monkeypatch)
    ds = load_dataset("cifar10")
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.x_train[0, 1, 1].tolist() == [10, 20, 30] and ds.x_train[0, 0, 5, 0] == 99
    assert ds.y_train[:4].tolist() == [1, 2, 3, 4] and ds.class_names[0] == "airplane"


def test_extracted_cifar_batches_in_the_keras_cache_are_found(tmp_path, monkeypatch, no_system_datasets):
    monkeypatch.setenv("PLAYGROUND_MIRROR_URL", _closed_port_url())
    with tarfile.open(fileobj=io.BytesIO(_tiny_cifar_archive())) as tar:
        tar.extractall(tmp_path / "keras" / "datasets", filter="data")
    ds = load_dataset("cifar10")
    assert ds.source.endswith("cifar-10-batches-bin") and len(ds.x_train) == 20


def test_offline_error_says_what_was_tried_and_where_to_put_a_copy(tmp_path, monkeypatch, no_system_datasets):
    url = _closed_port_url()
    monkeypatch.setenv("PLAYGROUND_MIRROR_URL", url)
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "URL fetch failure" not in message and "\n" not in message
    assert message.startswith("MNIST is not available: no local copy in ")
    assert str(tmp_path / "data") in message and str(tmp_path / "keras" / "datasets") in message
    assert f"the download from {url}/mnist.npz failed" in message and "Connection refused" in message
    assert f"put mnist.npz in {tmp_path / 'data'}" in message and "PLAYGROUND_MIRROR_URL" in message
    status = {s.name: s for s in datasets.dataset_status()}
    assert not status["mnist"].available_locally and url in status["mnist"].where


@pytest.mark.parametrize(
    "images,words",
    [
        (gzip.compress(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (30, 28, 28)) + bytes(100)), "is truncated"),
        (_idx(np.zeros((30, 28, 28)))[:-40], "end-of-stream"),  # the gzip stream cut short
        (gzip.compress(bytes([0, 0, 8, 3]) + (2**32 - 1).to_bytes(4, "big") * 3), "impossible idx header"),
        (gzip.compress(b"\x00\x00\x0d\x03" + bytes(12)), "not an idx file of unsigned bytes"),
    ],
    ids=["short data", "cut gzip", "huge header", "float idx"],
)
def test_damaged_local_copy_is_named_with_what_to_do(tmp_path, no_system_datasets, images, words):
    folder = tmp_path / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(images)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(_idx(np.zeros(30)))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(_idx(np.zeros((10, 28, 28))))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx(np.zeros(10)))
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion_mnist")
    message = str(info.value)
    assert message.startswith(f"The Fashion-MNIST files in {folder} cannot be read (") and words in message
    assert "downloaded again" in message


def test_mirror_missing_a_file_reports_the_http_status(mirror):
    with pytest.raises(DatasetError, match="HTTP Error 404"):
        load_dataset("cifar10")


def test_status_of_built_ins_and_system_copies():
    status = {s.name: s for s in datasets.dataset_status()}
    assert list(status) == ["mnist", "fashion_mnist", "cifar10", "shapes", "digits"]
    assert status["shapes"].available_locally and status["digits"].where == "built in"
    if FASHION_DIR.is_dir():
        assert status["fashion_mnist"].available_locally and status["fashion_mnist"].where == str(FASHION_DIR)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} is missing (Debian package dataset-fashion-mnist)")
def test_real_fashion_mnist_from_the_debian_package():
    start = time.process_time()
    ds = load_dataset("fashion_mnist")
    elapsed = time.process_time() - start
    assert isinstance(ds, Dataset) and ds.source == str(FASHION_DIR)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10 and np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.class_names[0] == "T-shirt/top" and 60 < ds.x_train.mean() < 90
    assert elapsed < 3.0  # CPU seconds; about 0.4 s
    assert datasets.prepare_options(ds) == {"light_on_dark": True, "center": False, "fill": 1.0}


@pytest.mark.parametrize("name, options", [("shapes", {}), ("shapes", {"seed": 7, "shapes_noise": 0.6}), ("digits", {})])
def test_the_known_sizes_of_the_built_ins_match_what_they_load(name, options):
    # The Playground sizes networks from these constants without drawing the images on the server.
    ds = datasets.load_dataset(name, **options)
    assert len(ds.x_train) == CATALOG[name].train_size
    assert ds.num_classes == CATALOG[name].num_classes
    assert tuple(ds.input_shape) == CATALOG[name].input_shape


def test_a_worker_prepares_only_data_that_is_already_here(mirror, monkeypatch, tmp_path):
    """The worker's "prepare" (the Playground's data, loaded while the worker is idle) never downloads."""
    from playground.training import events, worker

    folder, _ = mirror
    _publish(folder, "mnist.npz", _tiny_mnist(), monkeypatch)
    worker.prepare_data(events.PrepareData(spec=ExperimentSpec().with_values(dataset="mnist").to_json(indent=None), env={}))
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())
    # A missing upload is left for the job to report.
    worker.prepare_data(events.PrepareData(
        spec=ExperimentSpec().with_values(dataset=str(tmp_path / "gone.npz")).to_json(indent=None), env={}))
    assert "downloaded from" in load_dataset("mnist").source  # the job itself downloads it
