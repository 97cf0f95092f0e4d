"""`python -m playground ...`: train, predict, code, datasets, presets and errors.

End to end in subprocesses (exit status, stdout, no traceback on stderr), and
in-process through `cli.main` where a fresh TensorFlow import would add
nothing but time.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from playground import cli
from playground.settings import TEACHER_CODE_ENV
from playground.spec.presets import PRESETS, preset_spec

SMALL = ["--set", "sample_size=300", "--set", "filters=4,8", "--set", "dense_units=16", "--set", "batch_size=32"]


def run_cli(*args, timeout=300):
    """Run the CLI; returns (exit status, stdout, stderr)."""
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it: the CLI's own default applies
    done = subprocess.run([sys.executable, "-m", "playground", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real training run on shapes through the CLI, shared by the tests that need a run."""
    out = tmp_path_factory.mktemp("cli") / "runs"
    status, stdout, stderr = run_cli("train", "--dataset", "shapes", *SMALL, "--epochs", "2", "--json",
                                     "--out", str(out), "--name", "cli run")
    return status, stdout, stderr, out


def test_train_prints_epochs_and_ends_with_json(trained_run):
    status, stdout, stderr, out = trained_run
    assert status == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    # The run's summary (the keys of its metrics.json), then where it is and what it was.
    assert list(result) == ["test_accuracy", "test_loss", "train_seconds", "images_per_second", "params",
                            "epochs_completed", "stop_reason", "test_size", "run_dir", "message", "dataset", "preset",
                            "history"]
    assert result["epochs_completed"] == 2 and result["stop_reason"] == "completed"
    assert 0 <= result["test_accuracy"] <= 1 and result["images_per_second"] > 0 and result["params"] > 0
    assert result["dataset"] == "shapes" and result["preset"] == "default" and len(result["history"]["loss"]) == 2
    assert os.path.dirname(result["run_dir"]) == str(out)
    meta = json.loads(open(os.path.join(result["run_dir"], "meta.json")).read())
    assert meta["name"] == "cli run"
    metrics = json.loads(open(os.path.join(result["run_dir"], "metrics.json")).read())
    assert metrics == {key: result[key] for key in metrics}  # the same numbers as the run saved
    epoch_lines = [line for line in stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1", "2"]
    assert "val_accuracy" in epoch_lines[0] and "img/s" in epoch_lines[0]
    assert "Traceback" not in stderr


def run_in_process(capsys, *args):
    """cli.main in this process; returns (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_predict_each_file_and_survive_bad_ones(trained_run, tmp_path, capsys):
    status, stdout, _, _ = trained_run
    assert status == 0
    run_dir = json.loads(stdout.strip().splitlines()[-1])["run_dir"]
    from playground.data.datasets import load_dataset

    shapes = load_dataset("shapes")
    gray = tmp_path / "shape.png"
    Image.fromarray(shapes.x_test[0][..., 0]).save(gray)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    missing = tmp_path / "missing.png"

    status, stdout, stderr = run_cli("predict", "--run", run_dir, str(gray), str(corrupt), str(photo), str(missing))
    assert status == 1  # some files could not be used
    assert "Traceback" not in stderr
    lines = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [line["file"] for line in lines] == [str(gray), str(corrupt), str(photo), str(missing)]
    for good in (lines[0], lines[2]):
        assert set(good) == {"file", "label", "probabilities"}
        assert list(good["probabilities"]) == list(shapes.class_names)
        assert sum(good["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert good["label"] == max(good["probabilities"], key=good["probabilities"].get)
    for bad in (lines[1], lines[3]):
        assert set(bad) == {"file", "error"} and "\n" not in bad["error"]

    status, stdout, _ = run_in_process(capsys, "predict", "--run", run_dir, str(gray))
    assert status == 0 and [json.loads(line) for line in stdout.strip().splitlines()] == [lines[0]]


def test_code_from_run_preset_and_spec_file(trained_run, tmp_path, capsys):
    _, stdout, _, _ = trained_run
    run_dir = json.loads(stdout.strip().splitlines()[-1])["run_dir"]
    status, code, stderr = run_cli("code", "--run", run_dir)
    assert status == 0, stderr
    compile(code, "exported.py", "exec")
    assert "def build_model" in code and "Conv2D(filters=4," in code and "Conv2D(filters=8," in code

    status, code, stderr = run_in_process(capsys, "code", "--preset", "lenet5", "--dataset", "mnist")
    assert status == 0, stderr
    compile(code, "lenet.py", "exec")
    assert "AveragePooling2D" in code

    spec_file = tmp_path / "spec.json"
    spec_file.write_text(preset_spec("mini_resnet", "cifar10").to_json())
    status, code, stderr = run_in_process(capsys, "code", "--spec", str(spec_file), "--set", "filters=8,16,32")
    assert status == 0, stderr
    assert "Add(" in code and "(32, 32, 3)" in code and "Conv2D(filters=32," in code


def test_datasets_and_presets():
    status, stdout, _ = run_cli("datasets", "--json")
    assert status == 0
    rows = {row["name"]: row for row in map(json.loads, stdout.strip().splitlines())}
    assert set(rows) == {"mnist", "fashion_mnist", "cifar10", "shapes", "digits"}
    assert rows["shapes"]["available_locally"] and rows["shapes"]["where"] == "built in"

    status, stdout, _ = run_cli("presets")
    assert status == 0
    assert [line.split()[0] for line in stdout.strip().splitlines()] == list(PRESETS)
    assert "LeNet-5" in stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--dataset", "shapes", "--set", "filters=many"], "'filters' must be a comma-separated list"),
    (["train", "--dataset", "shapes", "--set", "colour=blue"], "Unknown setting 'colour'"),
    (["train", "--dataset", "shapes", "--set", "learning_rate=50"], "learning rate must be between"),
    (["train", "--dataset", "shapes", "--preset", "resnet1000"], "Unknown preset 'resnet1000'"),
    (["train", "--dataset", "no/such/folder"], "there is no file or folder"),
    (["train", "--dataset", "shapes", "--epochs", "two"], "invalid int value: 'two'"),
    (["predict", "--run", "no/such/run", "x.png"], "There is no run folder"),
    (["code", "--spec", "no-such-spec.json"], "No such file or directory"),
    (["serve", "--port", "70000"], "--port needs a port number from 1 to 65535"),
])
def test_errors_are_one_line_with_exit_status_2(args, message):
    status, stdout, stderr = run_cli(*args)
    assert status == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and message in stderr, stderr
    assert "Traceback" not in stderr


def test_unwritable_runs_folder_keeps_the_results(tmp_path, capsys):
    (tmp_path / "a file").write_text("")
    status, stdout, stderr = run_in_process(capsys, "train", "--dataset", "shapes", *SMALL, "--epochs", "1",
                                            "--json", "--out", str(tmp_path / "a file" / "runs"))
    assert status == 2
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["run_dir"] is None and result["stop_reason"] == "completed"
    assert stderr.strip().splitlines()[-1].startswith("error: Cannot save the run in ")
    assert "Traceback" not in stderr


def test_importing_the_library_loads_neither_streamlit_nor_tensorflow_for_the_cli():
    code = ("import sys, playground, playground.cli; "
            "print('streamlit' in sys.modules, 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _exec_command_line(pid: int, timeout: float = 30.0) -> list[str]:
    """The command line of process `pid` once it has become Streamlit (the CLI execs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        if "streamlit" in argv:
            return argv
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not start Streamlit within {timeout} s")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the server's environment from /proc")
def test_serve_classroom_serves_the_network_with_private_runs_and_a_new_teacher_code():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in (TEACHER_CODE_ENV, "PLAYGROUND_PRIVATE_RUNS")}
    server = subprocess.Popen([sys.executable, "-m", "playground", "serve", "--classroom", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        first = server.stdout.readline()
        code = re.fullmatch(r"Teacher code: ([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})\n", first)
        assert code, first
        # The process becomes the Streamlit server: its command line and environment are the classroom's.
        argv = _exec_command_line(server.pid)
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{server.pid}/environ").read_bytes().decode().split("\0") if "=" in item)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert environ[TEACHER_CODE_ENV] == code.group(1) and environ["PLAYGROUND_PRIVATE_RUNS"] == "1"
    assert argv[1:5] == ["-m", "streamlit", "run", str(cli.APP_FILE)]
    assert dict(zip(argv[5::2], argv[6::2])) == {"--server.address": "0.0.0.0", "--server.port": str(port),
                                                 "--server.headless": "true", "--client.showErrorDetails": "none"}


def test_serve_keeps_a_teacher_code_from_the_environment_and_serves_only_this_machine_without_classroom():
    argv, env, new_code = cli.serve_command(classroom=True, port=8600, environ={TEACHER_CODE_ENV: "owl"})
    assert new_code == "" and env[TEACHER_CODE_ENV] == "owl" and env["PLAYGROUND_PRIVATE_RUNS"] == "1"
    argv, env, new_code = cli.serve_command(classroom=False, port=8600, environ={})
    assert new_code == "" and env == {} and argv[argv.index("--server.address") + 1] == "localhost"
    codes = {cli.new_teacher_code() for _ in range(100)}
    assert len(codes) == 100 and all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in codes)
