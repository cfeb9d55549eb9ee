"""What the end-to-end benchmarks share: processes started, measured and always stopped.

- :class:`MockProcess`: ``mmgen -q mock --port 0 ...`` in its own process; parses the URL it
  prints; ``get``/``post`` its routes; stopped with SIGTERM, then SIGKILL.
- :func:`run_mmgen`: ``mmgen -q run ...`` (or any command) as a child process with a hard wall
  cap; returns its exit code, wall and CPU time and peak RSS (from ``wait4``'s rusage: exact,
  no /proc polling race), its stderr saved to a file.
- :func:`write_jobs`: one job file, ``defaults:`` + ``jobs:``, S2V-01 with an http image URL.
- :func:`status_records`: ``mmgen status --format json --out DIR``, parsed.
- :func:`install_sigterm_exit`: SIGTERM (nox or CI cancelling) unwinds like Ctrl-C, so every
  ``finally`` stops the processes it started.
- :func:`emit`: prints the one JSON object that ends every benchmark's output.

Every child is started in its own session (``start_new_session``) and stopped by its own id:
nothing here kills by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx

#: An image URL the mock accepts without fetching it (the real API would fetch it).
IMAGE_URL = "https://example.org/face.jpg"

#: The key mmgen sends to the mock (any well-formed key is accepted).
API_KEY = "bench-key"


def child_env(**extra: str) -> dict[str, str]:
    """This environment without MINIMAX_* (a user's real key or URL must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIMAX_")}
    env.update(extra)
    return env


def install_sigterm_exit() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``finally`` blocks stop the children."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; never raises if it is gone."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(10)


class MockProcess:
    """The bundled mock served by ``mmgen mock`` in a process of its own.

    Use as a context manager: ``with MockProcess(generation_seconds=0) as mock: mock.url``.
    """

    def __init__(
        self,
        *,
        generation_seconds: float | None = None,
        seed: int = 1,
        config_file: Path | None = None,
        log_file: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.args = [sys.executable, "-m", "mmgen", "-q", "mock", "--port", "0"]
        self.args += ["--seed", str(seed)]
        if generation_seconds is not None:
            self.args += ["--generation-seconds", str(generation_seconds)]
        if config_file is not None:
            self.args += ["--config", str(config_file)]
        self.log_file = log_file
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._http: httpx.Client | None = None
        self._log: IO[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> MockProcess:
        self._log = (
            open(self.log_file, "w", encoding="utf-8") if self.log_file is not None else None
        )
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env=child_env(),
            start_new_session=True,
        )
        try:
            self.url = self._read_url()
        except BaseException:
            self.stop()
            raise
        self._http = httpx.Client(base_url=self.url, trust_env=False, timeout=120)
        return self

    def _read_url(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        lines: list[str] = []
        found: list[str] = []
        ready = threading.Event()

        def read() -> None:  # drains stdout for the mock's whole life, so it never blocks
            for line in stdout:
                lines.append(line)
                # "mmgen mock: serving the MiniMax API on URL" (other lines name other origins)
                match = re.search(r"MiniMax API on (http://[\w.\-\[\]:]+)", line)
                if match is not None and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()  # EOF: the mock is gone

        self._reader = threading.Thread(target=read, daemon=True, name="mock-stdout")
        self._reader.start()
        if not ready.wait(self.start_timeout) or not found:
            raise RuntimeError(
                f"the mock did not start within {self.start_timeout:g} s (exit code "
                f"{self.proc.poll()}; it printed {''.join(lines)[-300:]!r}; see "
                f"{self.log_file or 'its stderr'})"
            )
        return found[0]

    def get(self, path: str) -> Any:
        assert self._http is not None
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def post(self, path: str) -> Any:
        assert self._http is not None
        response = self._http.post(path)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.get("/_mock/stats")
        return stats

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.get("/_mock/tasks")["tasks"]
        return tasks

    def reset(self) -> None:
        self.post("/_mock/reset")

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.proc is not None:
            stop_process(self.proc)
            if self._reader is not None:
                self._reader.join(10)  # EOF once the mock is gone
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ChildRun:
    """How one child process ran."""

    exit_code: int | None  # None: stopped at the wall cap
    wall: float
    cpu: float  # user + system seconds
    max_rss_mb: float  # peak resident set size
    stderr_path: Path
    capped: bool

    def stderr_lines(self) -> list[str]:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []


def run_child(
    args: Sequence[str],
    *,
    stderr_path: Path,
    cap: float,
    env: dict[str, str] | None = None,
    stdout_path: Path | None = None,
) -> ChildRun:
    """Run a command to its end, or SIGTERM it (then SIGKILL) at ``cap`` seconds of wall time.

    Peak RSS and CPU come from ``os.wait4`` (the kernel's rusage of exactly this child).
    """
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(open(stderr_path, "w", encoding="utf-8"))
        out: IO[str] | int = subprocess.DEVNULL
        if stdout_path is not None:
            out = stack.enter_context(open(stdout_path, "w", encoding="utf-8"))
        proc = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env if env is not None else child_env(),
            start_new_session=True,
        )
        capped = False
        signalled_at: float | None = None
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                now = time.perf_counter()
                if signalled_at is None and now - started > cap:
                    capped, signalled_at = True, now
                    proc.send_signal(signal.SIGTERM)
                elif signalled_at is not None and now - signalled_at > 30:
                    proc.kill()
                time.sleep(0.02)
        except BaseException:
            stop_process(proc)
            raise
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        exit_code=None if capped else proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        stderr_path=stderr_path,
        capped=capped,
    )


def mmgen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmgen", *args]


def run_mmgen(
    spec: Path,
    out: Path | str,
    base_url: str,
    *,
    concurrency: int,
    cap: float,
    stderr_path: Path,
    extra: Sequence[str] = (),
) -> ChildRun:
    """``mmgen -q run SPEC --base-url URL --rpm 0 --out OUT --concurrency N [extra]``."""
    args = mmgen_command(
        "-q",
        "run",
        str(spec),
        "--base-url",
        base_url,
        "--rpm",
        "0",
        "--out",
        str(out),
        "--concurrency",
        str(concurrency),
        *extra,
    )
    return run_child(args, stderr_path=stderr_path, cap=cap, env=child_env(MINIMAX_API_KEY=API_KEY))


def status_records(out: Path | str, *, all_versions: bool = False) -> list[dict[str, Any]]:
    """The out dir's outcome records, as ``mmgen status --format json`` gives them."""
    args = mmgen_command("status", "--format", "json", "--out", str(out))
    if all_versions:
        args.append("--all")
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env=child_env(), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"mmgen status failed ({done.returncode}): {done.stderr.strip()}")
    records: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return records


def write_jobs(path: Path, prompts: Sequence[str], *, names: Sequence[str] | None = None) -> Path:
    """One job file: ``defaults:`` (model, subject image) and one job per prompt."""
    names = names or [f"job{n:05d}" for n in range(len(prompts))]
    lines = [
        "defaults:",
        "  model: S2V-01",
        f"  subject_reference: [{{type: character, image: ['{IMAGE_URL}']}}]",
        "jobs:",
    ]
    for name, prompt in zip(names, prompts, strict=True):
        lines += [f"  - name: {name}", f"    prompt: {json.dumps(prompt)}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def parse_utc(stamp: str) -> float:
    """``2026-11-25T06:58:04.123Z`` -> epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary_ms(values_s: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p99/max (and count) in milliseconds of values in seconds."""

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "count": len(values_s),
        "p50": ms(statistics.median(values_s)) if values_s else None,
        "p99": ms(percentile(values_s, 0.99)),
        "max": ms(max(values_s)) if values_s else None,
    }


def emit(result: dict[str, Any]) -> None:
    """The last line of every benchmark: one JSON object."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True), flush=True)


@contextlib.contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temp folder for job files and out dirs (kept with ``keep`` for a post-mortem)."""
    import tempfile

    if keep:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        print(f"(keeping {path})", file=sys.stderr)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
