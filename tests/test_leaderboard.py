"""Class challenge: target checks, ranking, teacher code, isolation and concurrent submissions.

Most tests give the board a stand-in scorer (the record's own accuracy) so they need no model; the
server's own scoring is tested end to end with a crafted bundle and a real network at the end.
"""

import io
import json
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from playground.settings import TEACHER_CODE_ENV
from playground.runs.leaderboard import (
    Challenge,
    ChallengeBoard,
    ChallengeError,
    Entry,
    rank,
    validate_display_name,
)
from playground.runs.record import RunRecord
from playground.spec.experiment import ExperimentSpec

ROOT = Path(__file__).resolve().parents[1]


def make_record(run_id, owner, accuracy=0.95, params=50_000, seconds=12.0, dataset="mnist", tmp=Path("/nonexistent")):
    """A RunRecord as the run store reads it from disk (the board reads only these fields)."""
    spec = ExperimentSpec().with_values(dataset=dataset, filters="8,16", epochs=2)
    return RunRecord(
        run_id=run_id, path=tmp / run_id, name=f"run {run_id}", spec=spec, dataset=dataset,
        class_names=tuple(str(i) for i in range(10)), input_shape=(28, 28, 1), history={},
        metrics={"test_accuracy": accuracy, "params": params, "train_seconds": seconds, "test_loss": 0.1},
        created="2025-01-01T00:00:00+00:00", owner=owner,
    )


def stand_in_score(record, dataset):
    """A scorer for the board's own logic: the accuracy the test record carries (no model to evaluate)."""
    return record.metrics["test_accuracy"]


@pytest.fixture
def board(tmp_path, monkeypatch):
    monkeypatch.delenv(TEACHER_CODE_ENV, raising=False)
    b = ChallengeBoard(tmp_path / "runs" / ".challenge", scorer=stand_in_score)
    b.set_challenge(Challenge("mnist", 0.99, 100_000))
    return b


def test_default_folder_is_hidden_under_runs_dir(tmp_path):
    # The run store skips dot-folders, so the challenge never shows up as a damaged run.
    assert ChallengeBoard().folder == tmp_path / "runs" / ".challenge"


def test_target_check_and_description():
    target = Challenge("mnist", 0.99, 100_000)
    assert target.describe() == ">= 99.0% test accuracy on MNIST digits with at most 100,000 parameters"
    assert target.is_met("mnist", 0.991, 100_000)
    assert not target.is_met("mnist", 0.989, 10)
    assert not target.is_met("mnist", 0.995, 100_001)
    assert not target.is_met("fashion_mnist", 0.999, 10)
    assert Challenge("mnist", 0.5).is_met("mnist", 0.6, 10**9)  # 0 = no parameter limit


def test_ranking_accuracy_then_params_then_time():
    def e(name, acc, params, secs):
        return Entry(name, acc, params, secs, "mnist", "", 0.0, False, False)

    ordered = rank([e("c", 0.98, 10, 5), e("a", 0.99, 50, 9), e("b", 0.99, 50, 3), e("d", 0.99, 20, 99)])
    assert [x.display_name for x in ordered] == ["d", "b", "a", "c"]


def test_submissions_ranked_and_judged(board):
    board.submit(make_record("r1", "alice", 0.992, 90_000, 30), "Alice", "alice")
    board.submit(make_record("r2", "bob", 0.995, 150_000, 20), "Bob", "bob")
    board.submit(make_record("r3", "carol", 0.992, 60_000, 40), "Carol", "carol")
    rows = board.entries("alice")
    assert [r.display_name for r in rows] == ["Bob", "Carol", "Alice"]
    assert [r.meets_target for r in rows] == [False, True, True]  # Bob is over the parameter budget
    assert [r.mine for r in rows] == [False, False, True]
    assert rows[0].playground_link.startswith("/Playground?")
    assert "filters=8,16" in rows[0].spec_query
    assert ExperimentSpec.from_query_params(dict(parse_qsl(rows[0].spec_query))) == make_record("r2", "bob").spec


def test_resubmitting_a_run_replaces_its_entry(board):
    board.submit(make_record("r1", "alice"), "First name", "alice")
    board.submit(make_record("r1", "alice"), "Second name", "alice")
    assert [r.display_name for r in board.entries()] == ["Second name"]
    assert board.withdraw(make_record("r1", "alice"), "alice")
    assert board.entries() == []


def test_only_own_runs_and_nothing_private_on_the_board(board):
    bobs = make_record("20250101-000000000-abcd", "bob-session-id", 0.999)
    with pytest.raises(ChallengeError, match="Only your own runs"):
        board.submit(bobs, "Mallory", "mallory-session-id")
    with pytest.raises(ChallengeError, match="Only your own runs"):
        board.submit(make_record("x", None), "Nobody", "")
    board.submit(bobs, "Bob", "bob-session-id")
    assert board.submitted_run_ids([bobs], "bob-session-id") == {bobs.run_id}
    assert board.submitted_run_ids([bobs], "mallory-session-id") == set()
    # Neither the public rows nor the shared file hold a session id, run id or path.
    text = board.path.read_text() + repr(board.entries())
    for secret in ("bob-session-id", bobs.run_id, str(bobs.path)):
        assert secret not in text
    assert set(vars(board.entries()[0])) == {
        "display_name", "accuracy", "params", "train_seconds", "dataset", "spec_query", "submitted", "meets_target", "mine"}


def test_refusals(board):
    with pytest.raises(ChallengeError, match="challenge is on MNIST"):
        board.submit(make_record("r1", "a", dataset="shapes"), "A", "a")
    with pytest.raises(ChallengeError, match="damaged"):
        broken = make_record("r2", "a")
        broken.damaged = "metrics.json is not valid JSON"
        board.submit(broken, "A", "a")
    with pytest.raises(ChallengeError, match="could not be scored"):
        board.submit(make_record("r3", "a", accuracy=float("nan")), "A", "a")
    with pytest.raises(ChallengeError, match="no parameter count"):
        board.submit(make_record("r4", "a", params=None), "A", "a")
    empty = ChallengeBoard(board.folder.parent / "other", scorer=stand_in_score)
    with pytest.raises(ChallengeError, match="No challenge has been set"):
        empty.submit(make_record("r1", "a"), "A", "a")


@pytest.mark.parametrize("name, ok", [
    ("Ada", True), ("  Grace H.  ", True), ("x" * 40, True), ("Zoë 🚀", True),
    ("", False), ("   ", False), ("x" * 41, False), ("<b>bold</b>", False),
    ("a&b", False), ("tab\there", False), ("new\nline", False), ("zero\u200bwidth", False),
])
def test_display_name_validation(name, ok):
    if ok:
        assert validate_display_name(name) == name.strip()
    else:
        with pytest.raises(ChallengeError, match="display name"):
            validate_display_name(name)


def test_teacher_code_from_environment(board, monkeypatch):
    monkeypatch.setenv(TEACHER_CODE_ENV, "s3cret")
    assert board.code_required() and board.code_from_environment()
    with pytest.raises(ChallengeError, match="teacher code is wrong"):
        board.set_challenge(Challenge("shapes", 0.9), code="guess")
    with pytest.raises(ChallengeError, match="teacher code is wrong"):
        board.clear_entries(code="")
    board.set_challenge(Challenge("shapes", 0.9), code="s3cret")
    assert board.challenge() == Challenge("shapes", 0.9)


def test_teacher_code_chosen_by_the_teacher(board):
    assert not board.code_required()  # no code anywhere: anyone may change the target
    board.set_challenge(Challenge("mnist", 0.98), new_code="apple")
    assert board.code_required()
    assert "apple" not in board.path.read_text()  # only a salted hash is stored
    with pytest.raises(ChallengeError, match="teacher code is wrong"):
        board.set_challenge(Challenge("mnist", 0.5), code="pear")
    board.submit(make_record("r1", "a"), "A", "a")
    assert board.clear_entries(code="apple") == 1 and board.entries() == []
    board.set_challenge(Challenge("mnist", 0.97), code="apple", new_code="")
    assert not board.code_required() and board.challenge().min_accuracy == 0.97


def test_bad_challenge_values(board):
    for bad, match in [(Challenge("imagenet", 0.9), "built-in dataset"), (Challenge("mnist", 1.5), "between 0 and 1"),
                       (Challenge("mnist", 0.9, -1), "whole number"), (Challenge("mnist", 0.9, 0, "x" * 201), "note")]:
        with pytest.raises(ChallengeError, match=match):
            board.set_challenge(bad)


def test_damaged_file_is_reported_not_crashed(board):
    board.path.write_text("{not json")
    with pytest.raises(ChallengeError, match="damaged"):
        board.entries()


def test_concurrent_thread_submissions_all_land(board):
    records = [make_record(f"t{i}", f"owner{i}", 0.9 + i / 1000) for i in range(16)]
    barrier = threading.Barrier(len(records))
    errors = []

    def submit(record):
        barrier.wait()
        try:
            board.submit(record, f"Student {record.run_id}", record.owner)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(e.display_name for e in board.entries()) == sorted(f"Student t{i}" for i in range(16))


def test_concurrent_process_submissions_all_land(board):
    # Each process submits several runs as fast as it can (RunRecord is light: no TensorFlow to import).
    child = textwrap.dedent("""
        import sys
        from pathlib import Path
        from playground.runs.leaderboard import ChallengeBoard
        from playground.runs.record import RunRecord
        from playground.spec.experiment import ExperimentSpec
        folder, worker = sys.argv[1], int(sys.argv[2])
        board = ChallengeBoard(folder, scorer=lambda record, dataset: 0.99)
        spec = ExperimentSpec().with_values(dataset="mnist")
        for i in range(10):
            owner = f"p{worker}-{i}"  # one entry per session: each run from its own session
            record = RunRecord(run_id=f"p{worker}-{i}", path=Path(folder) / "none", name="x", owner=owner, spec=spec,
                               metrics={"test_accuracy": 0.99, "params": 1000 + i, "train_seconds": 1.0})
            board.submit(record, f"proc {worker} run {i}", owner)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", child, str(board.folder), str(w)], cwd=ROOT) for w in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    names = {e.display_name for e in board.entries()}
    assert names == {f"proc {w} run {i}" for w in range(4) for i in range(10)}
    assert len(json.loads(board.path.read_text())["entries"]) == 40


def test_one_entry_per_session_its_best_run(board):
    board.submit(make_record("r1", "alice", 0.95), "Alice", "alice")
    board.submit(make_record("r2", "alice", 0.97), "Alice", "alice")  # better: it replaces the entry
    assert [(e.display_name, e.accuracy) for e in board.entries()] == [("Alice", 0.97)]
    with pytest.raises(ChallengeError, match="ranks above this run") as info:
        board.submit(make_record("r3", "alice", 0.90), "Alice", "alice")
    assert "\n" not in str(info.value)
    assert board.submitted_run_ids([make_record(f"r{i}", "alice") for i in (1, 2, 3)], "alice") == {"r2"}
    # One session cannot fill the board: fifty better and better runs leave one entry.
    for i in range(50):
        board.submit(make_record(f"m{i}", "mallory", 0.5 + i / 100), "Mallory", "mallory")
    assert [(e.display_name, round(e.accuracy, 6)) for e in board.entries()] == [("Mallory", 0.99), ("Alice", 0.97)]
    assert len(json.loads(board.path.read_text())["entries"]) == 2


def test_a_file_from_before_one_entry_per_session_shows_each_sessions_best(board):
    board.submit(make_record("r1", "alice", 0.95), "Alice", "alice")
    state = json.loads(board.path.read_text())
    state["entries"].append({**state["entries"][0], "key": "older-run", "accuracy": 0.97})
    board.path.write_text(json.dumps(state))
    assert [(e.display_name, e.accuracy) for e in board.entries()] == [("Alice", 0.97)]


def test_display_names_are_unique_per_challenge(board):
    board.submit(make_record("r1", "alice"), "Ada Lovelace", "alice")
    for copy in ("Ada Lovelace", "ada lovelace", "  ADA   LOVELACE ", "AdaLovelace", "\uff21da Lovelace"):  # \uff21: a full-width A
        with pytest.raises(ChallengeError, match="already used by someone else") as info:
            board.submit(make_record("m1", "mallory"), copy, "mallory")
        assert "\n" not in str(info.value)
    board.submit(make_record("r1", "alice"), "ada  lovelace", "alice")  # a session may respell its own name
    board.submit(make_record("m1", "mallory"), "Mallory", "mallory")
    assert sorted(e.display_name for e in board.entries()) == ["Mallory", "ada  lovelace"]


def test_an_imported_run_ranks_with_an_unknown_training_time(board):
    imported = make_record("r1", "alice", 0.99, 50_000, seconds=-1.0)
    imported.metrics["stop_reason"] = "imported"  # as RunStore reads a run made by bundle.import_bundle
    assert imported.imported and not make_record("r2", "bob").imported
    assert board.submit(imported, "Alice", "alice").train_seconds is None
    board.submit(make_record("r2", "bob", 0.99, 50_000, seconds=100.0), "Bob", "bob")
    assert [(e.display_name, e.train_seconds) for e in board.entries()] == [("Bob", 100.0), ("Alice", None)]


def _forged(bundle: bytes, claims: dict) -> bytes:
    """`bundle` with its meta.json's metrics changed to `claims`."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["meta.json"])
    meta["metrics"].update(claims)
    members["meta.json"] = json.dumps(meta).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_the_board_ranks_the_accuracy_measured_here_never_a_bundles_claim(monkeypatch):
    import tiny_runs

    from playground.data.datasets import load_dataset
    from playground.runs.bundle import export_bundle, import_bundle
    from playground.runs.evaluation import evaluate_run
    from playground.runs.store import RunStore

    monkeypatch.delenv(TEACHER_CODE_ENV, raising=False)
    spec, data, result = tiny_runs.trained("digits")
    honest = RunStore().save(result, spec, data, name="honest", owner="bob")
    # A student edits an exported bundle's meta.json: 500% accuracy, negative training time, 1 parameter.
    forged = import_bundle(_forged(export_bundle(honest), {"test_accuracy": 5.0, "train_seconds": -1, "params": 1}),
                           "forged.zip", owner="mallory")
    assert forged.imported and forged.metrics["params"] == honest.metrics["params"]

    board = ChallengeBoard()  # the real scorer: the run evaluated on the challenge's test set here
    board.set_challenge(Challenge("digits", 0.0))
    entry = board.submit(forged, "Mallory", "mallory")
    measured = float(evaluate_run(forged, load_dataset("digits")).correct.mean())
    assert entry.accuracy == measured <= 1.0
    assert entry.train_seconds is None and entry.params == honest.metrics["params"]
    # A plausible claim is kept as the run's claim, and ranks no better.
    plausible = import_bundle(_forged(export_bundle(honest), {"test_accuracy": 0.999}), "plausible.zip", owner="mallory")
    assert plausible.metrics["test_accuracy"] == 0.999
    assert board.submit(plausible, "Mallory", "mallory").accuracy == measured
    # The honest run scores the same with the same weights, and its known training time ranks it first.
    assert board.submit(honest, "Bob", "bob").accuracy == measured
    assert [(e.display_name, e.accuracy) for e in board.entries()] == [("Bob", measured), ("Mallory", measured)]
