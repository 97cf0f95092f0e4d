"""Class challenge: a teacher's target and a leaderboard of the runs students submit.

The teacher sets a target ("at least 99% test accuracy on MNIST with at most
100,000 parameters"); students opt in by submitting one of their own runs under
a display name. Everything lives in one JSON file, `challenge.json`, in
`<runs_dir>/.challenge/` (hidden, so the run store does not list it as a run),
shared by every session of the server:

    {"version": 1, "salt": hex, "code_hash": hex | "", "challenge": {...} | null,
     "entries": [{"key", "owner_key", "display_name", "accuracy", "params",
                  "train_seconds" (null = unknown), "dataset", "spec_query", "submitted"}]}

Scores are the server's own: a submitted run is evaluated on the challenge's
test set here (`evaluation.measured_accuracy`), whatever its metrics.json
says, and an imported run's training time is unknown (its bundle only
claims one). Each session has one entry, its best run: a submission that
ranks at least as well replaces it. A display name belongs to the session
that used it first in this challenge (compared without case and spaces).

Owners and run ids are stored only as salted hashes (`owner_key`, `key`), and
`entries()` returns display names and numbers only: no session ids, run ids or
paths ever reach another student. Writers take an exclusive `fcntl.flock` on a
lock file, write a temporary file and `os.replace` it, so concurrent
submissions from threads or processes all land and readers never see half a file.

The teacher's fields are protected by a code: the `PLAYGROUND_TEACHER_CODE`
environment variable when set (`python -m playground serve --classroom` sets
one), else a code the teacher chose when setting the challenge (stored as a
salted PBKDF2 hash). With neither, the Class challenge page lets only a
browser on the server's own machine set it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import secrets
import tempfile
import time
import unicodedata
import urllib.parse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from playground.data.catalog import CATALOG, dataset_title
from playground.runs.record import RunRecord
from playground.settings import get_settings

CHALLENGE_FOLDER = ".challenge"
MAX_NAME_LENGTH = 40
MAX_ENTRIES = 1000  # keeps the shared file small whatever a class does
_FORBIDDEN_NAME_CHARS = set("<>&\"'`")
_PBKDF2_ROUNDS = 100_000


# (run, the challenge's dataset name) -> the run's test accuracy 0..1 measured on this server; raises ValueError.
Scorer = Callable[[RunRecord, str], float]


class ChallengeError(ValueError):
    """A challenge or submission that cannot be accepted, explained in one sentence."""


@dataclass(frozen=True)
class Challenge:
    """The teacher's target: a named dataset, a minimum accuracy and a parameter budget."""

    dataset: str  # a built-in dataset name (a key of the data catalog) the runs must be trained on
    min_accuracy: float  # test accuracy a run must reach, 0..1
    max_params: int = 0  # most parameters a run may have; 0 = no limit
    note: str = ""  # a line from the teacher shown above the board

    def describe(self) -> str:
        """The target in words, e.g. '>= 99.0% test accuracy on MNIST digits with at most 100,000 parameters'."""
        text = f">= {self.min_accuracy * 100:.1f}% test accuracy on {dataset_title(self.dataset)}"
        return text + (f" with at most {self.max_params:,} parameters" if self.max_params else "")

    def is_met(self, dataset: str, accuracy: float, params: int) -> bool:
        """Whether a run on `dataset` with this test accuracy and parameter count meets the target."""
        return (
            dataset == self.dataset
            and accuracy >= self.min_accuracy
            and (self.max_params == 0 or params <= self.max_params)
        )


@dataclass(frozen=True)
class Entry:
    """One leaderboard row as every student sees it: a display name and public numbers only."""

    display_name: str
    accuracy: float  # test accuracy 0..1, measured on this server
    params: int  # parameters of the network
    train_seconds: float | None  # training time on this server; None for an imported run (unknown)
    dataset: str  # the dataset the run was trained on
    spec_query: str  # the run's spec as URL query parameters (for a Playground link)
    submitted: float  # UNIX time of the (latest) submission
    meets_target: bool  # against the current challenge
    mine: bool  # submitted from the session that asked for the board

    @property
    def playground_link(self) -> str:
        """Relative link that opens the Playground page with this run's settings."""
        return f"/Playground?{self.spec_query}"


def validate_display_name(name: Any) -> str:
    """The display name stripped of outer spaces, or ChallengeError.

    A name is 1 to 40 printable characters and holds none of < > & " ' `
    (so it can never be read as HTML).
    """
    if not isinstance(name, str):
        raise ChallengeError(f"A display name must be text. Received: {type(name).__name__}")
    text = name.strip()
    if not 1 <= len(text) <= MAX_NAME_LENGTH:
        raise ChallengeError(f"A display name needs 1 to {MAX_NAME_LENGTH} characters. Received: {len(text)} characters")
    if not text.isprintable():
        raise ChallengeError(f"A display name may hold only printable characters. Received: {text!r}")
    bad = sorted(set(text) & _FORBIDDEN_NAME_CHARS)
    if bad:
        raise ChallengeError(f"A display name may not contain {' '.join(bad)}. Received: {text!r}")
    return text


def check_challenge(challenge: Challenge) -> Challenge:
    """Return `challenge` when its fields are usable, else raise ChallengeError naming the value."""
    if challenge.dataset not in CATALOG:
        raise ChallengeError(f"A challenge needs a built-in dataset ({', '.join(CATALOG)}). Received: dataset={challenge.dataset!r}")
    if not 0.0 <= challenge.min_accuracy <= 1.0:
        raise ChallengeError(f"The minimum accuracy must be between 0 and 1. Received: min_accuracy={challenge.min_accuracy}")
    if isinstance(challenge.max_params, bool) or not isinstance(challenge.max_params, int) or challenge.max_params < 0:
        raise ChallengeError(f"The parameter budget must be a whole number >= 0 (0 = no limit). Received: max_params={challenge.max_params!r}")
    if len(challenge.note) > 200 or not challenge.note.isprintable():
        raise ChallengeError(f"The note must be at most 200 printable characters. Received: {len(challenge.note)} characters")
    return challenge


def rank(entries: list[Entry]) -> list[Entry]:
    """Entries best first: accuracy descending, then parameters ascending, then training time ascending (unknown last)."""
    return sorted(entries, key=lambda e: (*_standing(e.accuracy, e.params, e.train_seconds), e.submitted))


def _standing(accuracy: float, params: int, seconds: float | None) -> tuple[float, int, float]:
    """The sort key of a result on the board: smaller ranks higher."""
    return -accuracy, params, math.inf if seconds is None else seconds


def name_key(name: str) -> str:
    """What makes two display names the same: compared without case, spaces and width forms ("Ada Li" = "ａｄａli")."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


class ChallengeBoard:
    """The challenge file of one server, safe to use from many sessions and processes at once.

    Args:
        folder: where `challenge.json` and its lock live; default
            `<settings.runs_dir>/.challenge`.
        scorer: measures a submitted run's test accuracy; default
            `evaluation.measured_accuracy` (the run evaluated on this server).
    """

    def __init__(self, folder: Path | str | None = None, *, scorer: Scorer | None = None):
        self.folder = Path(folder) if folder is not None else get_settings().runs_dir / CHALLENGE_FOLDER
        self.path = self.folder / "challenge.json"
        self._lock_path = self.folder / ".challenge.lock"
        self._scorer = scorer or _measured_accuracy

    # -- teacher ----------------------------------------------------------------------------

    def challenge(self) -> Challenge | None:
        """The current target, or None before the teacher sets one."""
        data = self._read()["challenge"]
        return Challenge(**data) if data else None

    def code_required(self) -> bool:
        """Whether setting the challenge asks for a teacher code."""
        return bool(get_settings().teacher_code) or bool(self._read()["code_hash"])

    def code_from_environment(self) -> bool:
        """Whether the teacher code comes from PLAYGROUND_TEACHER_CODE (and cannot be changed here)."""
        return bool(get_settings().teacher_code)

    def set_challenge(self, challenge: Challenge, *, code: str = "", new_code: str | None = None) -> None:
        """Set the target for everyone; entries stay and are judged against the new target.

        Args:
            challenge: the new target (checked with `check_challenge`).
            code: the teacher code, when one is required.
            new_code: a code that protects later changes ("" removes it); ignored
                when PLAYGROUND_TEACHER_CODE is set. None keeps the current code.
        """
        check_challenge(challenge)
        with self._locked():
            state = self._read()
            self._check_code(state, code)
            state["challenge"] = asdict(challenge)
            if new_code is not None and not self.code_from_environment():
                state["code_hash"] = _hash_code(new_code, state["salt"]) if new_code else ""
            self._write(state)

    def clear_entries(self, *, code: str = "") -> int:
        """Remove every submission (the teacher code is checked as for `set_challenge`); returns how many."""
        with self._locked():
            state = self._read()
            self._check_code(state, code)
            removed = len(state["entries"])
            state["entries"] = []
            self._write(state)
        return removed

    # -- students ---------------------------------------------------------------------------

    def submit(self, record: RunRecord, display_name: str, session_id: str) -> Entry:
        """Put one of this session's runs on the board, scored on this server, as the session's one entry.

        The run is evaluated on the challenge's test set (seconds on a CPU the
        first time; cached in the run folder). It replaces the session's
        entry when it ranks at least as well, or is the same run (e.g. under
        a new display name).

        Args:
            record: a run from the run store (its owner, spec, parameter count,
                training time and weights are used; never its test accuracy).
            display_name: the name shown to everyone (see `validate_display_name`);
                no other session may have used it in this challenge.
            session_id: the submitting session; it must own the run.

        Returns:
            The entry as the board shows it.
        """
        name = validate_display_name(display_name)
        if not session_id or record.owner != session_id:
            raise ChallengeError(f"Only your own runs can be submitted. Received: run {record.name!r}, which this session did not train")
        if record.damaged:
            raise ChallengeError(f"A damaged run cannot be submitted. Received: run {record.name!r}")
        params = (record.metrics or {}).get("params")
        if isinstance(params, bool) or not isinstance(params, int) or params < 0:
            raise ChallengeError(f"The run has no parameter count to submit. Received: run {record.name!r}")
        target = self._target_for(record.spec.data.dataset)
        accuracy = self._measure(record, target)
        result = {
            "display_name": name,
            "accuracy": accuracy,
            "params": params,
            "train_seconds": None if record.imported else _seconds(record.metrics),
            "dataset": target.dataset,
            "spec_query": urllib.parse.urlencode(record.spec.to_query_params(), safe=","),
            "submitted": time.time(),
        }
        with self._locked():
            state = self._read()
            target = self._target_for(target.dataset, state)  # the teacher may have changed it meanwhile
            owner_key = _digest(state["salt"], session_id)
            row = {"key": _digest(state["salt"], session_id, record.run_id), "owner_key": owner_key, **result}
            others = [e for e in state["entries"] if e["owner_key"] != owner_key]
            taken = {name_key(e["display_name"]) for e in others}
            if name_key(name) in taken:
                raise ChallengeError(f"The display name {name!r} is already used by someone else on this board; choose another.")
            _check_replaces(row, [e for e in state["entries"] if e["owner_key"] == owner_key])
            if len(others) >= MAX_ENTRIES:
                raise ChallengeError(f"The board is full with {MAX_ENTRIES} entries; ask the teacher to clear it.")
            state["entries"] = [*others, row]
            self._write(state)
        return self._public(row, target, owner_key)

    def _target_for(self, dataset: str, state: dict[str, Any] | None = None) -> Challenge:
        """The current challenge, checked to be on `dataset` (read from `state`, else from the file)."""
        state = state or self._read()
        if not state["challenge"]:
            raise ChallengeError("No challenge has been set yet; ask the teacher to set one first.")
        target = Challenge(**state["challenge"])
        if dataset != target.dataset:
            raise ChallengeError(f"The challenge is on {dataset_title(target.dataset)}, so runs on other data cannot be submitted. Received: a run on {dataset!r}")
        return target

    def _measure(self, record: RunRecord, target: Challenge) -> float:
        """The run's test accuracy on the challenge's data, from the scorer, as 0..1."""
        try:
            accuracy = float(self._scorer(record, target.dataset))
        except ValueError as exc:  # DatasetError, EvaluationError, RunStoreError
            raise ChallengeError(f"The run could not be scored on the test set of {dataset_title(target.dataset)}: {exc}") from None
        if not 0.0 <= accuracy <= 1.0:  # also NaN
            raise ChallengeError(f"The run could not be scored on the test set of {dataset_title(target.dataset)}. Received: accuracy {accuracy}")
        return accuracy

    def withdraw(self, record: RunRecord, session_id: str) -> bool:
        """Take this session's entry for `record` off the board; returns whether there was one."""
        with self._locked():
            state = self._read()
            key = _digest(state["salt"], session_id, record.run_id)
            entries = [e for e in state["entries"] if e["key"] != key]
            removed = len(entries) != len(state["entries"])
            if removed:
                state["entries"] = entries
                self._write(state)
        return removed

    def submitted_run_ids(self, records: list[RunRecord], session_id: str) -> set[str]:
        """Which of this session's `records` are on the board (matched through the hashes)."""
        state = self._read()
        keys = {e["key"] for e in state["entries"]}
        return {r.run_id for r in records if _digest(state["salt"], session_id, r.run_id) in keys}

    def entries(self, session_id: str | None = None) -> list[Entry]:
        """The board, ranked (see `rank`), one entry per session; `mine` marks the row of `session_id`."""
        state = self._read()
        target = Challenge(**state["challenge"]) if state["challenge"] else None
        mine = _digest(state["salt"], session_id) if session_id else None
        best: dict[str, dict[str, Any]] = {}  # owner_key -> its best row (files written before one entry per session held several)
        for row in state["entries"]:
            kept = best.get(row["owner_key"])
            if kept is None or _row_standing(row) < _row_standing(kept):
                best[row["owner_key"]] = row
        return rank([self._public(row, target, mine) for row in best.values()])

    # -- file handling ----------------------------------------------------------------------

    @staticmethod
    def _public(row: dict[str, Any], target: Challenge | None, owner_key: str | None) -> Entry:
        return Entry(
            display_name=row["display_name"],
            accuracy=float(row["accuracy"]),
            params=int(row["params"]),
            train_seconds=None if row["train_seconds"] is None else float(row["train_seconds"]),
            dataset=row["dataset"],
            spec_query=row["spec_query"],
            submitted=float(row["submitted"]),
            meets_target=bool(target and target.is_met(row["dataset"], float(row["accuracy"]), int(row["params"]))),
            mine=owner_key is not None and row["owner_key"] == owner_key,
        )

    def _check_code(self, state: dict[str, Any], code: str) -> None:
        settings = get_settings()
        if settings.teacher_code:
            ok = settings.is_teacher_code(code)
        elif state["code_hash"]:
            ok = hmac.compare_digest(_hash_code(code, state["salt"]), state["code_hash"])
        else:
            ok = True
        if not ok:
            raise ChallengeError("The teacher code is wrong, so nothing was changed.")

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": 1, "salt": secrets.token_hex(16), "code_hash": "", "challenge": None, "entries": []}
        try:
            state = json.loads(text)
            if not isinstance(state, dict) or not isinstance(state.get("entries"), list) or "salt" not in state:
                raise ValueError("unexpected layout")
            if state.get("challenge"):
                Challenge(**state["challenge"])
        except (ValueError, TypeError) as exc:
            raise ChallengeError(f"The challenge file {self.path} is damaged ({exc}); delete it to start a new challenge.") from None
        state.setdefault("code_hash", "")
        return state

    def _write(self, state: dict[str, Any]) -> None:
        # Write next to the target, flush to disk, then swap in atomically.
        fd, tmp = tempfile.mkstemp(prefix=".challenge-", suffix=".json", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # One exclusive lock per read-modify-write; flock is per open file, so it
        # also serialises threads of one process that each open the lock file.
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _measured_accuracy(record: RunRecord, dataset: str) -> float:
    """The default scorer: `evaluation.measured_accuracy` (imported when first used: it needs NumPy, and TensorFlow to predict)."""
    from playground.runs.evaluation import measured_accuracy

    return measured_accuracy(record, dataset)


def _seconds(metrics: dict[str, Any]) -> float | None:
    """A run's training time from its metrics.json (written by this server), None when absent or not a time."""
    value = metrics.get("train_seconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _row_standing(row: dict[str, Any]) -> tuple[float, int, float]:
    """`_standing` of a row of the file."""
    seconds = row.get("train_seconds")
    return _standing(float(row["accuracy"]), int(row["params"]), None if seconds is None else float(seconds))


def _check_replaces(row: dict[str, Any], current: list[dict[str, Any]]) -> None:
    """Refuse `row` when the session's entry on the board (`current`, at most one) is another run that ranks higher."""
    for entry in current:
        if entry["key"] != row["key"] and _row_standing(entry) < _row_standing(row):
            raise ChallengeError(
                f"Your entry on the board ({float(entry['accuracy']):.2%}) ranks above this run ({row['accuracy']:.2%}); "
                "take it off the board first to submit a weaker run."
            )


def _digest(salt: str, *parts: str) -> str:
    text = "\x00".join((salt, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _hash_code(code: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", code.encode(), bytes.fromhex(salt), _PBKDF2_ROUNDS).hex()
