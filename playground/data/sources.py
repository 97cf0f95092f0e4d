"""MNIST, Fashion-MNIST and CIFAR-10: found locally, or downloaded once and verified.

The files are the ones Keras' own loaders download, under the same names:
`mnist.npz` and the four Fashion-MNIST idx files from Keras' storage bucket.
For CIFAR-10 we use the authors' *binary* archive (`cifar-10-binary.tar.gz`)
rather than the Python one Keras reads, because reading the Python version
means unpickling, which this project never does.

Before downloading, each dataset is looked for in the playground's data
folder (`PLAYGROUND_DATA_DIR`), in the Keras cache (`$KERAS_HOME/datasets`,
default `~/.keras/datasets`) and in `/usr/share/datasets` (where Debian's
`dataset-fashion-mnist` package installs). Downloads go to the data folder,
from `PLAYGROUND_MIRROR_URL` when it is set (a classroom mirror serving the
files under their official names) or else from the official URLs, and are
kept only when their size and checksum match the published ones in
`REMOTE_FILES`.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from playground.data.dataset import Dataset, DatasetError
from playground.settings import get_settings

log = logging.getLogger(__name__)

KERAS_STORAGE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download is given up


@dataclass(frozen=True)
class RemoteFile:
    """One official file: where it is published and how to recognise it."""

    name: str  # file name, also its name on a mirror
    url: str  # official download URL
    algorithm: str  # "sha256" or "md5": the digest its publisher gives
    digest: str  # hex digest of the official file
    size: int  # bytes of the official file


# Published digests: mnist.npz from Keras' loader, Fashion-MNIST from Zalando's
# README, CIFAR-10 from the authors' page (md5 c32a1d4ab5d03f1284b67883e8d87530;
# we keep the sha256 of the same 170,052,171-byte file).
REMOTE_FILES: dict[str, RemoteFile] = {
    f.name: f
    for f in (
        RemoteFile("mnist.npz", KERAS_STORAGE + "mnist.npz", "sha256",
                   "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1", 11_490_434),
        RemoteFile("train-images-idx3-ubyte.gz", KERAS_STORAGE + "train-images-idx3-ubyte.gz", "md5",
                   "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
        RemoteFile("train-labels-idx1-ubyte.gz", KERAS_STORAGE + "train-labels-idx1-ubyte.gz", "md5",
                   "25c81989df183df01b3e8a0aad5dffbe", 29_515),
        RemoteFile("t10k-images-idx3-ubyte.gz", KERAS_STORAGE + "t10k-images-idx3-ubyte.gz", "md5",
                   "bef4ecab320f06d8554ea6380940ec79", 4_422_102),
        RemoteFile("t10k-labels-idx1-ubyte.gz", KERAS_STORAGE + "t10k-labels-idx1-ubyte.gz", "md5",
                   "bb300cfdad3c16e7a12a480ee83cd310", 5_148),
        RemoteFile("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", "sha256",
                   "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170_052_171),
    )
}

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(d) for d in range(10))

_CIFAR_RECORD = 1 + 32 * 32 * 3  # label byte, then 1024 red, 1024 green, 1024 blue bytes
_CIFAR_BATCH_RECORDS = 10_000
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"
_CIFAR_DIR = "cifar-10-batches-bin"  # the folder inside the archive


@dataclass(frozen=True)
class NamedSource:
    """Where one named dataset's files live, relative to a search folder."""

    name: str
    title: str
    subdir: str  # "" or e.g. "fashion-mnist", as in the Keras cache
    files: tuple[str, ...]  # names in REMOTE_FILES


NAMED_SOURCES = {
    s.name: s
    for s in (
        NamedSource("mnist", "MNIST", "", ("mnist.npz",)),
        NamedSource("fashion_mnist", "Fashion-MNIST", "fashion-mnist",
                    ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")),
        NamedSource("cifar10", "CIFAR-10", "", ("cifar-10-binary.tar.gz",)),
    )
}


def search_dirs() -> list[Path]:
    """Folders searched for local copies, in order: data folder, Keras cache, system datasets."""
    keras_home = Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser()
    dirs = [get_settings().data_dir, keras_home / "datasets", SYSTEM_DATASETS_DIR]
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_local(name: str) -> Path | None:
    """The folder (or, for CIFAR-10, the extracted batches folder) holding a local copy, or None."""
    source = NAMED_SOURCES[name]
    for base in search_dirs():
        folder = base / source.subdir if source.subdir else base
        if all((folder / f).is_file() for f in source.files):
            return folder
        if name == "cifar10" and all((folder / _CIFAR_DIR / f).is_file() for f in (*_CIFAR_TRAIN, _CIFAR_TEST)):
            return folder / _CIFAR_DIR
    return None


def download_origin(name: str) -> str:
    """Where `name` would be downloaded from: the mirror base URL, or the official URL of its first file."""
    mirror = get_settings().mirror_url
    return mirror + "/" if mirror else REMOTE_FILES[NAMED_SOURCES[name].files[0]].url.rsplit("/", 1)[0] + "/"


def load_named(name: str) -> Dataset:
    """Load MNIST, Fashion-MNIST or CIFAR-10 from a local copy, downloading it first if needed."""
    source = NAMED_SOURCES[name]
    folder = find_local(name)
    origin = "local copy"
    if folder is None:
        folder, origin = _download_all(source), download_origin(name)
    readers = {"mnist": _read_mnist, "fashion_mnist": _read_fashion, "cifar10": _read_cifar}
    class_names = {"mnist": DIGIT_CLASSES, "fashion_mnist": FASHION_CLASSES, "cifar10": CIFAR10_CLASSES}[name]
    where = str(folder) if origin == "local copy" else f"{folder} (downloaded from {origin})"
    try:
        x_train, y_train, x_test, y_test = readers[name](folder)
        return Dataset(name, x_train, y_train, x_test, y_test, class_names, source=where)
    except (OSError, ValueError, EOFError, tarfile.TarError) as exc:  # DatasetError is a ValueError
        raise DatasetError(
            f"The {source.title} files in {folder} cannot be read ({str(exc).rstrip('.')}); "
            "replace them with good copies or delete them so they are downloaded again."
        ) from None


def _download_all(source: NamedSource) -> Path:
    """Download every file of `source` into the data folder; one DatasetError if any fails."""
    settings = get_settings()
    folder = settings.data_dir / source.subdir if source.subdir else settings.data_dir
    for file_name in source.files:
        target = folder / file_name
        if target.is_file():
            continue
        try:
            download_file(REMOTE_FILES[file_name], settings.mirror_url, target)
        except DatasetError as exc:
            tried = ", ".join(str(d / source.subdir) if source.subdir else str(d) for d in search_dirs())
            names = ", ".join(source.files[:-1]) + " and " + source.files[-1] if len(source.files) > 1 else source.files[0]
            if source.name == "cifar10":
                names += f" (or its extracted {_CIFAR_DIR} folder)"
            pronoun = "them" if len(source.files) > 1 else "it"
            raise DatasetError(
                f"{source.title} is not available: no local copy in {tried}, and {exc} "
                f"To use it offline, put {names} in {folder}, or set PLAYGROUND_MIRROR_URL to a mirror that serves {pronoun}."
            ) from None
    return folder


def download_file(remote: RemoteFile, mirror_url: str, target: Path, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Download one official file (from the mirror when given) to `target`, verifying size and checksum.

    The file is written under a temporary name next to `target` and renamed
    only when complete and verified, so a half-download never looks like a copy.

    Args:
        remote: the official file.
        mirror_url: base URL serving the file under `remote.name`; "" for the official URL.
        target: where the verified file goes.
        timeout: seconds without data before giving up.

    Returns:
        `target`.

    Raises:
        DatasetError: a one-sentence reason naming the URL (for the caller to wrap).
    """
    url = f"{mirror_url.rstrip('/')}/{remote.name}" if mirror_url else remote.url
    limit = remote.size + remote.size // 10 + 1024  # a little slack; the checksum decides
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(remote.algorithm)
    handle, partial = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=target.parent)
    log.info("Downloading %s to %s", url, target)
    try:
        received = 0
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                received += len(chunk)
                if received > limit:
                    raise DatasetError(f"the download from {url} is larger than the official file ({remote.size:,} bytes).")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != remote.digest:
            raise DatasetError(
                f"the file downloaded from {url} does not match the official {remote.name} "
                f"({remote.algorithm} {digest.hexdigest()[:12]}... instead of {remote.digest[:12]}...), so it was discarded."
            )
        os.replace(partial, target)
    except DatasetError:
        Path(partial).unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        Path(partial).unlink(missing_ok=True)
        # URLError wraps the socket error in .reason; HTTPError's own text has the status code.
        reason = exc.reason if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError) else exc
        raise DatasetError(f"the download from {url} failed ({reason}).") from None
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------
# Readers of the official formats (no pickle anywhere).
# ---------------------------------------------------------------------------


def _read_mnist(folder: Path):
    with np.load(folder / "mnist.npz", allow_pickle=False) as f:
        x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return _images(x_train), y_train.astype(np.int32), _images(x_test), y_test.astype(np.int32)


def _read_fashion(folder: Path):
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz")
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DatasetError(f"The Fashion-MNIST files in {folder} disagree on the number of images and labels.")
    return _images(x_train), y_train.astype(np.int32), _images(x_test), y_test.astype(np.int32)


def _images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> (N, H, W, C)."""
    x = np.asarray(x, dtype=np.uint8)
    return x[..., np.newaxis] if x.ndim == 3 else x


def read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes (gzipped or not), as LeCun's MNIST format defines it.

    Returns:
        uint8 array with the dimensions in the header.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        header = f.read(4)
        if len(header) != 4 or header[:2] != b"\0\0" or header[2] != 0x08:
            raise DatasetError(f"{path} is not an idx file of unsigned bytes.")
        ndim = header[3]
        dims = [int(d) for d in np.frombuffer(f.read(4 * ndim), dtype=">u4")]
        count = math.prod(dims) if len(dims) == ndim else -1  # Python ints: no overflow
        if count < 0 or count > 2**31:
            raise DatasetError(f"{path} has an impossible idx header.")
        data = f.read(count)
    if len(data) != count:
        raise DatasetError(f"{path} is truncated: {len(data):,} of {count:,} bytes.")
    return np.frombuffer(data, dtype=np.uint8).reshape(tuple(dims))


def _read_cifar(folder: Path):
    """CIFAR-10 binary batches, from `cifar-10-binary.tar.gz` or an extracted batches folder."""
    if folder.name == _CIFAR_DIR:
        batches = {f: (folder / f).read_bytes() for f in (*_CIFAR_TRAIN, _CIFAR_TEST)}
    else:
        batches = _cifar_batches_from_archive(folder / "cifar-10-binary.tar.gz")
    train = [_cifar_records(batches[f], f) for f in _CIFAR_TRAIN]
    x_test, y_test = _cifar_records(batches[_CIFAR_TEST], _CIFAR_TEST)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def _cifar_batches_from_archive(path: Path) -> dict[str, bytes]:
    """Read the six batch files from the archive without extracting anything."""
    wanted = {f"{_CIFAR_DIR}/{f}": f for f in (*_CIFAR_TRAIN, _CIFAR_TEST)}
    batches: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if member.name in wanted and member.isfile():
                if member.size > _CIFAR_BATCH_RECORDS * _CIFAR_RECORD:
                    raise DatasetError(f"{path}: {member.name} is larger than a CIFAR-10 batch.")
                batches[wanted[member.name]] = tar.extractfile(member).read()
    missing = sorted(set(wanted.values()) - set(batches))
    if missing:
        raise DatasetError(f"{path} lacks {', '.join(missing)}; it is not the CIFAR-10 binary archive.")
    return batches


def _cifar_records(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not data or len(data) % _CIFAR_RECORD:
        raise DatasetError(f"CIFAR-10 batch {name} is not a whole number of {_CIFAR_RECORD}-byte records.")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0].astype(np.int32)
    # (N, 3072) channel planes -> (N, 3, 32, 32) -> (N, 32, 32, 3)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels
