"""Server-wide settings read from environment variables, with defaults that suit a laptop.

Every setting has one place here so the CLI, the worker processes and the app
agree. Read them through `get_settings()`; tests change them with
environment variables.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Paths and limits of one installation."""

    runs_dir: Path  # where runs are saved (PLAYGROUND_RUNS_DIR, default ./runs)
    data_dir: Path  # local dataset copies and extracted uploads (PLAYGROUND_DATA_DIR, default ./data)
    mirror_url: str  # base URL of a dataset mirror for offline classrooms (PLAYGROUND_MIRROR_URL, "" = the official sources)
    max_concurrent_runs: int  # runs that train at once server-wide (PLAYGROUND_MAX_CONCURRENT; 0 = auto: half the cores, or a Ray cluster's CPUs / cpus_per_run)
    session_grace_seconds: float  # a run whose browser session is gone is cancelled after this (PLAYGROUND_SESSION_GRACE, default 120)
    max_upload_mb: int  # largest upload accepted (PLAYGROUND_MAX_UPLOAD_MB, default 200)
    max_dataset_mb: int = 1024  # decoded images of one dataset file, folder or upload, as uint8 (PLAYGROUND_MAX_DATASET_MB)
    upload_quota_mb: int = 1000  # stored uploads of one browser session (PLAYGROUND_UPLOAD_QUOTA_MB)
    uploads_total_mb: int = 10_000  # stored uploads of everyone together (PLAYGROUND_UPLOADS_TOTAL_MB)
    private_runs: bool = False  # each browser session sees only its own runs and those saved from the CLI (PLAYGROUND_PRIVATE_RUNS=1)
    teacher_code: str = ""  # protects the class challenge and other sessions' runs (PLAYGROUND_TEACHER_CODE, "" = none)
    mixed_precision: bool = True  # float16 compute on GPUs that support it (PLAYGROUND_MIXED_PRECISION=0 keeps float32)
    pause_timeout_seconds: float = 300.0  # a paused or stepped run is stopped, its model kept, after this long (PLAYGROUND_PAUSE_TIMEOUT)
    # Runs in progress (queued, training or paused) per browser address, all its tabs together (PLAYGROUND_JOBS_PER_CLIENT).
    # Browsers on the server's own machine (localhost) report no address and are not capped, so on a laptop
    # nothing changes; behind a proxy a whole class shares one address: raise it there.
    jobs_per_client: int = 1
    runs_per_session: int = 100  # saved runs one browser session may keep before training a new model (PLAYGROUND_RUNS_PER_SESSION)
    runs_total_mb: int = 20_000  # all run folders together; no training starts beyond it (PLAYGROUND_RUNS_TOTAL_MB)
    # Where runs train: "ray" (an embedded local Ray instance, or the cluster at ray_address) or "processes"
    # (worker processes of the web server, no Ray) (PLAYGROUND_ENGINE).
    engine: str = "ray"
    ray_address: str = ""  # a Ray cluster to join, host:port (PLAYGROUND_RAY_ADDRESS, "" = an embedded local instance)
    cpus_per_run: int = 0  # CPUs one training run takes on a Ray node (PLAYGROUND_CPUS_PER_RUN, 0 = cores / max_concurrent here)
    # The most a run may cost: its estimated training time at this server's measured speed (PLAYGROUND_RUN_BUDGET_MINUTES).
    run_budget_minutes: float = 10.0

    @property
    def uploads_dir(self) -> Path:
        """Datasets extracted from browser uploads; the only paths the browser may name."""
        return self.data_dir / "uploads"

    def is_teacher_code(self, entered: str) -> bool:
        """Whether `entered` is this server's teacher code (compared in constant time; False when none is set)."""
        return bool(self.teacher_code) and hmac.compare_digest(entered.encode(), self.teacher_code.encode())


TEACHER_CODE_ENV = "PLAYGROUND_TEACHER_CODE"  # the variable that sets the teacher code


def _int_env(name: str, default: int, minimum: int = 1) -> int:
    try:
        return max(minimum, int(os.environ.get(name, default)))
    except ValueError:
        return default


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def parse_bool(text: str | None, default: bool | None) -> bool | None:
    """Read a yes/no setting: "1", "true", "yes", "on" and "0", "false", "no", "off" (any case); anything else is `default`."""
    value = (text or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def get_settings() -> Settings:
    """The settings from the environment (read on each call, so tests can change them)."""
    return Settings(
        runs_dir=Path(os.environ.get("PLAYGROUND_RUNS_DIR", "runs")).expanduser(),
        data_dir=Path(os.environ.get("PLAYGROUND_DATA_DIR", "data")).expanduser(),
        mirror_url=os.environ.get("PLAYGROUND_MIRROR_URL", "").rstrip("/"),
        max_concurrent_runs=_int_env("PLAYGROUND_MAX_CONCURRENT", 0, minimum=0),
        session_grace_seconds=_float_env("PLAYGROUND_SESSION_GRACE", 120.0),
        max_upload_mb=_int_env("PLAYGROUND_MAX_UPLOAD_MB", 200),
        max_dataset_mb=_int_env("PLAYGROUND_MAX_DATASET_MB", 1024),
        upload_quota_mb=_int_env("PLAYGROUND_UPLOAD_QUOTA_MB", 1000),
        uploads_total_mb=_int_env("PLAYGROUND_UPLOADS_TOTAL_MB", 10_000),
        private_runs=parse_bool(os.environ.get("PLAYGROUND_PRIVATE_RUNS"), False),
        teacher_code=os.environ.get(TEACHER_CODE_ENV, ""),
        mixed_precision=parse_bool(os.environ.get("PLAYGROUND_MIXED_PRECISION"), True),
        pause_timeout_seconds=_float_env("PLAYGROUND_PAUSE_TIMEOUT", 300.0),
        jobs_per_client=_int_env("PLAYGROUND_JOBS_PER_CLIENT", 1),
        runs_per_session=_int_env("PLAYGROUND_RUNS_PER_SESSION", 100),
        runs_total_mb=_int_env("PLAYGROUND_RUNS_TOTAL_MB", 20_000),
        engine=_engine(os.environ.get("PLAYGROUND_ENGINE", "")),
        ray_address=os.environ.get("PLAYGROUND_RAY_ADDRESS", "").strip(),
        cpus_per_run=_int_env("PLAYGROUND_CPUS_PER_RUN", 0, minimum=0),
        run_budget_minutes=_float_env("PLAYGROUND_RUN_BUDGET_MINUTES", 10.0),
    )


ENGINES = ("ray", "processes")


def _engine(text: str) -> str:
    """The training engine named by PLAYGROUND_ENGINE ("" = "ray"); a misspelt name fails loudly at start."""
    name = text.strip().lower() or "ray"
    if name not in ENGINES:
        raise ValueError(f"PLAYGROUND_ENGINE must be one of {', '.join(ENGINES)}. Received: {text!r}")
    return name
