"""Claims: which runner creates the task of one job version, so none is created twice however
many runners share an out dir (a folder or a bucket).

Before the paid create a runner writes ``claims/NAME/<spec_hash>.json`` create-only
(``O_EXCL`` locally, ``If-None-Match: *`` in an object store) naming itself: host, pid, run id,
when. Once the task id is recorded the claim gains it (a write over the version it read). A
runner that meets someone else's claim never creates that version: with a task id it follows
that task (resumes it); without one it leaves the job to the holder and says who holds it
since when. A claim stays while its version is in flight, unknown or done (a done version is
never created again); a failed version's claim is removed, so the next run may try again.

A claim without a task id whose runner died (on this host: its pid is gone) means the create
may or may not have reached MiniMax: the job is ``unknown``, as a lone "submitting" record
always was. A runner on another host cannot be seen dead: ``mmgen unlock`` clears its claim
after showing the holder (like ``terraform force-unlock``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, replace
from typing import Any

from mmgen.errors import ClaimedError, StateError
from mmgen.state.records import utc_now
from mmgen.state.store import Store

CLAIMS = "claims/"

#: Run ids of the runs going on in this process (a claim of this pid with another run id is
#: an earlier run's, which is over).
LIVE_RUNS: set[str] = set()


@dataclass(frozen=True)
class RunIdentity:
    """Who runs: written into every claim this run takes."""

    run_id: str
    host: str
    pid: int
    started_at: str

    @classmethod
    def this_process(cls) -> RunIdentity:
        return cls(
            run_id=secrets.token_hex(6),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=utc_now(),
        )


@dataclass(frozen=True)
class Claim:
    """One job version claimed by one run (the ``mmgen claims`` row)."""

    job: str
    spec_hash: str
    run_id: str
    host: str
    pid: int
    claimed_at: str
    task_id: str | None = None

    @property
    def key(self) -> str:
        return claim_key(self.job, self.spec_hash)

    def holder(self) -> str:
        """Who holds it, for messages: ``run 3f2a.. (pid 4242 on ci-7) since 2026-..Z``."""
        return f"run {self.run_id} (pid {self.pid} on {self.host}) since {self.claimed_at}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Claim:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(
            job=str(data["job"]),
            spec_hash=str(data["spec_hash"]),
            run_id=str(data["run_id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            claimed_at=str(data["claimed_at"]),
            task_id=None if data.get("task_id") is None else str(data["task_id"]),
        )


def claim_key(job: str, spec_hash: str) -> str:
    return f"{CLAIMS}{job}/{spec_hash}.json"


def _encode(claim: Claim) -> bytes:
    return (json.dumps(claim.to_json(), ensure_ascii=False, indent=1) + "\n").encode()


class Claims:
    """The claims of one out dir, as one runner sees and takes them."""

    def __init__(self, store: Store, runner: RunIdentity | None = None) -> None:
        self.store = store
        self.runner = runner or RunIdentity.this_process()
        #: versions this run claimed: key -> (the claim, its version for the task-id update)
        self._held: dict[str, tuple[Claim, str]] = {}
        #: jobs whose claim another run held when this one tried to take it
        self.met: dict[str, ClaimedError] = {}

    def read(self, job: str, spec_hash: str) -> Claim | None:
        return self._read_key(claim_key(job, spec_hash))

    def _read_key(self, key: str) -> Claim | None:
        got = self.store.get(key)
        if got is None:
            return None
        try:
            return Claim.from_json(json.loads(got))
        except (ValueError, KeyError, TypeError) as err:
            raise StateError(
                f"{self.store.url}: corrupt claim {key} ({err})",
                hint=f"remove it with `mmgen unlock {key.split('/')[1]}` once no run uses it",
            ) from err

    def all(self) -> list[Claim]:
        """Every claim in the out dir (one listing, then one read per claim)."""
        claims = []
        for entry in self.store.list(CLAIMS):
            if entry.key.endswith(".json"):
                claim = self._read_key(entry.key)
                if claim is not None:
                    claims.append(claim)
        return claims

    def keys(self) -> set[tuple[str, str]]:
        """(job, spec_hash) of every claim, from one listing (no reads)."""
        found = set()
        for entry in self.store.list(CLAIMS):
            job, _, name = entry.key[len(CLAIMS) :].rpartition("/")
            if job and name.endswith(".json"):
                found.add((job, name[: -len(".json")]))
        return found

    def take(self, job: str, spec_hash: str) -> None:
        """Claim this version before its create; :class:`ClaimedError` when another run holds
        it (nothing written)."""
        key = claim_key(job, spec_hash)
        if key in self._held:
            return
        mine = Claim(
            job=job,
            spec_hash=spec_hash,
            run_id=self.runner.run_id,
            host=self.runner.host,
            pid=self.runner.pid,
            claimed_at=utc_now(),
        )
        version = self.store.create(key, _encode(mine), durable=False)
        if version is None:
            other = self.read(job, spec_hash)
            if other is None:  # released between the two calls: try once more
                version = self.store.create(key, _encode(mine), durable=False)
                other = self.read(job, spec_hash) if version is None else None
            if other is not None:
                self.met[job] = ClaimedError(other.job, other.holder(), other.task_id)
                raise self.met[job]
        self._held[key] = (mine, version or "")

    def record_task(self, job: str, spec_hash: str, task_id: str) -> None:
        """The claimed version's task was created: write its id into the claim (only over the
        claim this run wrote: an unlocked or retaken claim is left alone)."""
        key = claim_key(job, spec_hash)
        held = self._held.get(key)
        if held is None or held[0].task_id == task_id:
            return
        claim = replace(held[0], task_id=task_id)
        if self.store.replace(key, _encode(claim), held[1], durable=False):
            self._held[key] = (claim, "")  # its task is known: nothing more to write

    def release(self, job: str, spec_hash: str, task_id: str | None = None) -> None:
        """The version failed: remove its claim, so another try may claim it again. Only this
        run's claim, or a claim naming the failed ``task_id`` (its task is over, whoever
        created it); another run's claim on another task is left alone."""
        key = claim_key(job, spec_hash)
        mine = self._held.pop(key, None) is not None
        claim = self._read_key(key)
        if claim is None:
            return
        if (mine and claim.run_id == self.runner.run_id) or (
            task_id is not None and claim.task_id == task_id
        ):
            self.store.delete(key)

    def unlock(self, job: str, spec_hash: str) -> Claim | None:
        """Remove a claim whoever holds it (``mmgen unlock``); returns what it was."""
        claim = self.read(job, spec_hash)
        if claim is not None:
            self.store.delete(claim_key(job, spec_hash))
        return claim

    def is_dead(self, claim: Claim) -> bool:
        """Whether the claim's runner is known to be gone: it ran on this host and its
        process no longer exists (another host's runner cannot be seen)."""
        if claim.run_id == self.runner.run_id:
            return False
        if claim.host != self.runner.host:
            return False
        if claim.pid == os.getpid():
            return claim.run_id not in LIVE_RUNS
        return not _pid_alive(claim.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
