"""Resource caps against hostile uploads: time, outcome and memory of the server while each is handled.

    python -m benchmarks.bench_hostile

Each case runs in a fresh process standing in for the web server: it builds
one hostile file, hands it to the code the app uses (`uploads.import_upload`
for datasets, which decodes in a child process; `images.decode_image` for a
picture on the Predict page, decoded in the server itself), and reports the
outcome (the one-line message for a refusal), the seconds taken, the peak
resident memory of the server process and of the decoding child.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile

from benchmarks.common import ROOT, emit, run_child, setup_path, table

setup_path()

CASES = {
    "zeros_npz": "4000x512x512 zeros .npz, compressed about 1000x",
    "bool_npz": "random bool .npz, 64 MiB of pixels",
    "huge_header_npz": ".npz whose header promises 1,000,000 512x512 images",
    "tiny_images_zip": "zip of 100,000 8x8 PNG images in 2 classes",
    "deep_zip": "zip of 6 images below 20,000 wrapping folders",
    "png16": "7000x7000 16-bit PNG sent to Predict",
    "icon_bomb": ".ico holding a 6000x6000 PNG",
}
FILE_NAMES = {"zeros_npz": "zeros.npz", "bool_npz": "masks.npz", "huge_header_npz": "huge.npz",
              "tiny_images_zip": "tiny.zip", "deep_zip": "deep.zip", "png16": "scan.png", "icon_bomb": "favicon.ico"}


def build(case: str) -> tuple[bytes, str]:
    """The hostile file's bytes and name."""
    import numpy as np
    from PIL import Image

    def npz(**arrays) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    def labels(n: int) -> np.ndarray:
        return np.arange(n) % 2

    def png(size, value=0, mode="L") -> bytes:
        buffer = io.BytesIO()
        Image.new(mode, size, value).save(buffer, "PNG")
        return buffer.getvalue()

    if case == "zeros_npz":
        zeros = np.zeros((4000, 512, 512), np.uint8)
        return npz(x_train=zeros, y_train=labels(4000), x_test=zeros[:10], y_test=labels(10)), "zeros.npz"
    if case == "bool_npz":
        bools = np.random.default_rng(0).random((16384, 64, 64)) < 0.5
        return npz(x_train=bools, y_train=labels(16384), x_test=bools[:100], y_test=labels(100)), "masks.npz"
    if case == "huge_header_npz":
        text = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 512, 512), }"
        text += " " * (63 - (len(text) + 10) % 64) + "\n"
        header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for key in ("x_train", "x_test"):
                z.writestr(f"{key}.npy", header)
            for key in ("y_train", "y_test"):
                label_bytes = io.BytesIO()
                np.save(label_bytes, labels(2))
                z.writestr(f"{key}.npy", label_bytes.getvalue())
        return buffer.getvalue(), "huge.npz"
    if case in ("tiny_images_zip", "deep_zip"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            if case == "tiny_images_zip":
                tiles = [png((8, 8), v) for v in range(0, 250, 10)]
                for i in range(100_000):
                    z.writestr(f"{'ab'[i % 2]}/{i}.png", tiles[i % len(tiles)])
            else:
                wrappers = "/".join(["w"] * 20_000)
                for c in ("cat", "dog"):
                    for i in range(3):
                        z.writestr(f"{wrappers}/{c}/{i}.png", png((6, 6), 60 * i))
        return buffer.getvalue(), f"{case}.zip"
    if case == "png16":
        ramp = np.linspace(0, 65535, 7000, dtype=np.uint16)
        buffer = io.BytesIO()
        Image.fromarray(np.broadcast_to(ramp, (7000, 7000)).copy()).save(buffer, "PNG")
        return buffer.getvalue(), "scan.png"
    if case == "icon_bomb":
        data = png((6000, 6000))
        directory = (0).to_bytes(2, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little")
        entry = bytes([0, 0, 0, 0]) + (1).to_bytes(2, "little") + (32).to_bytes(2, "little")
        entry += len(data).to_bytes(4, "little") + (22).to_bytes(4, "little")
        return directory + entry + data, "favicon.ico"
    raise ValueError(f"Unknown case {case!r}. Choose one of {', '.join(CASES)}.")


def child(case: str, path: str) -> None:
    """One case in this fresh process: read the file built by the parent, then handle it as the server does."""
    from playground.data.dataset import DatasetError
    from playground.data.images import ImageError, decode_image
    from playground.data.uploads import import_upload

    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    try:
        if name.endswith((".zip", ".npz")):
            path = import_upload(data, name, owner="bench")
            outcome = f"accepted ({os.path.getsize(path) / 1024**2:.1f} MB stored)"
        else:
            pixels = decode_image(data, name=name, size_hint=(28, 28))
            outcome = f"accepted ({pixels.shape[1]}x{pixels.shape[0]} decoded)"
    except (DatasetError, ImageError) as exc:
        outcome = f"refused: {exc}"
    seconds = time.perf_counter() - started
    emit({
        "case": case,
        "upload_mb": round(len(data) / 1024**2, 2),
        "outcome": outcome,
        "seconds": round(seconds, 2),
        "server_peak_before_mb": round(before_mb, 1),
        "decoder_child_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build:  # in its own process: building a file must not raise the measured processes' peak memory
        data, _ = build(args.cases[0])
        with open(args.file, "wb") as f:
            f.write(data)
        return 0
    if args.child:
        child(args.cases[0], args.file)
        return 0
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory() as files:
        os.environ["PLAYGROUND_DATA_DIR"] = data_dir
        rows = []
        for case in args.cases:
            path = os.path.join(files, FILE_NAMES[case])
            subprocess.run([sys.executable, "-m", "benchmarks.bench_hostile", "--build", "--cases", case, "--file", path],
                           check=True, cwd=ROOT, timeout=900)
            r = run_child("bench_hostile", ["--cases", case, "--file", path], timeout=900)
            # "added": the server process's peak beyond what it held once the upload's bytes were read.
            rows.append([CASES[case], r["upload_mb"], r["outcome"][:110], r["seconds"],
                         round(r["peak_rss_mb"] - r["server_peak_before_mb"], 1), r["peak_rss_mb"],
                         r["decoder_child_peak_mb"]])
    print(table(["file", "upload MB", "outcome", "seconds", "server peak added MB", "server peak MB",
                 "decoding child peak MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
