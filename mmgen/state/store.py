"""Where an out dir lives: one small interface over a local folder (the default) and object
stores (``s3://``, ``gs://``, ``az://``, served by obstore).

Keys are POSIX paths inside the out dir (``records.jsonl``, ``NAME.<hash8>.mp4``,
``claims/NAME/<spec_hash>.json``), so a bucket reads like the folder with ``aws s3 ls``.
Every call is blocking: callers on an event loop use ``asyncio.to_thread``.

What the records and claims need of a store, and what each kind gives:

- ``put``: a durable overwrite (local: temp file, fsync, rename, fsync the folder);
- ``create``: a create-only write that tells whether it won (local: ``O_EXCL``; object
  stores: ``If-None-Match: *``). :func:`check_conditional_writes` refuses a store that
  silently accepts a second create (some S3-compatible services do);
- ``replace``: a write that succeeds only over the version read (object stores: ``If-Match``
  on the ETag; local: the file's size and mtime, checked then renamed over: only the claim's
  holder updates a claim, so this is a guard against ``unlock``, not a lock);
- ``list``: keys with size and a fingerprint (ETag, or mtime), one request per 1,000 keys.

Credentials come from each cloud's standard environment (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``...), never
from mmgen's options; error messages are one line with every credential value scrubbed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mmgen.errors import StateError
from mmgen.state.files import commit, fsync_dir

if TYPE_CHECKING:
    import obstore.store

#: URL schemes served by an object store.
OBJECT_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "memory://")

#: Part size of multipart uploads (at most 4 parts in flight: ~32 MB of buffers per upload).
UPLOAD_PART = 8 * 1024 * 1024

#: Environment variables whose values never appear in a message.
_SECRET_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "MINIMAX_API_KEY",
)


@dataclass(frozen=True)
class Entry:
    """One object of a listing: its key, size and fingerprint (ETag, or ``mtime_ns:size``)."""

    key: str
    size: int
    fingerprint: str


def is_object_url(location: str) -> bool:
    """Whether ``--out`` names an object store rather than a folder."""
    return location.lower().startswith(OBJECT_SCHEMES)


def open_store(location: str | Path) -> Store:
    """The store ``--out`` names: an object-store URL, or a folder (created on first write)."""
    text = str(location)
    if is_object_url(text):
        return ObjectStore(text)
    return LocalStore(Path(text))


class Store(ABC):
    """An out dir's bytes. ``url`` names it in messages (never with credentials)."""

    url: str
    #: A local folder: videos are files here (``root``), records an fsync'd journal.
    local: bool = False

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    @abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and version (for :meth:`replace`), or None."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` durably (whole, atomically), over any earlier object."""

    @abstractmethod
    def create(self, key: str, data: bytes, *, durable: bool = True) -> str | None:
        """Write ``key`` only if it does not exist: its version (for :meth:`replace`), or
        None when it exists (nothing written). ``durable=False``: a folder skips the fsyncs
        (claims: the record beside them is what survives power loss)."""

    @abstractmethod
    def replace(self, key: str, data: bytes, version: str, *, durable: bool = True) -> bool:
        """Write ``key`` only over ``version``; False when it changed or is gone."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is gone)."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[Entry]:
        """Every object under ``prefix`` (a folder: ``records.d/``), sorted by key."""

    @abstractmethod
    def upload(self, path: Path, key: str) -> None:
        """Copy a local file to ``key`` (streamed; durable before it returns)."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Copy ``key`` to a local file (streamed, atomically)."""

    @abstractmethod
    def copy(self, source: str, target: str) -> None:
        """Make ``target`` hold ``source``'s bytes (server side where possible)."""

    @abstractmethod
    def sha256(self, key: str) -> str | None:
        """The sha256 of ``key``'s bytes (streamed), or None when there is none."""

    def head(self, key: str) -> Entry | None:
        """``key``'s size and fingerprint, or None."""
        parent = str(PurePosixPath(key).parent)
        for entry in self.list("" if parent == "." else parent + "/"):
            if entry.key == key:
                return entry
        return None


class LocalStore(Store):
    """A folder. Writes are durable: temp file, fsync, atomic rename, fsync of the folder."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as err:
            raise StateError(f"cannot read {self.path(key)}: {err.strerror}") from err

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        data = self.get(key)
        if data is None:
            return None
        return data, self._version(self.path(key))

    @staticmethod
    def _version(path: Path) -> str:
        stat = path.stat()
        return f"{stat.st_mtime_ns}:{stat.st_size}"

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        dest = self.path(key)
        with self._writing(dest) as tmp:
            tmp.write_bytes(data)
            if durable:
                commit(tmp, dest)
            else:
                os.replace(tmp, dest)

    def create(self, key: str, data: bytes, *, durable: bool = True) -> str | None:
        # written whole under a temp name, then hard-linked to its name: the link fails when
        # the name exists (create-only), and a reader never sees a half-written object
        dest = self.path(key)
        with self._writing(dest) as tmp:
            tmp.write_bytes(data)
            if durable:
                with tmp.open("rb") as handle:
                    os.fsync(handle.fileno())
            try:
                os.link(tmp, dest)
            except FileExistsError:
                return None
            stat = dest.stat()
        if durable:
            fsync_dir(dest.parent)
        return f"{stat.st_mtime_ns}:{stat.st_size}"

    def replace(self, key: str, data: bytes, version: str, *, durable: bool = True) -> bool:
        dest = self.path(key)
        try:
            if self._version(dest) != version:
                return False
        except FileNotFoundError:
            return False
        self.put(key, data, durable=durable)
        return True

    def delete(self, key: str) -> None:
        dest = self.path(key)
        try:
            dest.unlink(missing_ok=True)
        except OSError as err:
            raise StateError(f"cannot remove {dest}: {err.strerror}") from err
        fsync_dir(dest.parent)
        with contextlib.suppress(OSError):  # an emptied claims/NAME/ folder goes too
            if dest.parent != self.root:
                dest.parent.rmdir()

    def list(self, prefix: str = "") -> list[Entry]:
        base = self.root / prefix if prefix.endswith("/") else self.root
        entries = []
        for path in _walk(base):
            key = path.relative_to(self.root).as_posix()
            if not key.startswith(prefix) or path.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append(Entry(key, stat.st_size, f"{stat.st_mtime_ns}:{stat.st_size}"))
        return sorted(entries, key=lambda e: e.key)

    def sha256(self, key: str) -> str | None:
        digest = hashlib.sha256()
        try:
            with self.path(key).open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return digest.hexdigest()

    def head(self, key: str) -> Entry | None:
        try:
            stat = self.path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Entry(key, stat.st_size, f"{stat.st_mtime_ns}:{stat.st_size}")

    def upload(self, path: Path, key: str) -> None:
        dest = self.path(key)
        with contextlib.suppress(OSError):
            if path.samefile(dest):
                return
        with self._writing(dest) as tmp:
            shutil.copyfile(path, tmp)
            commit(tmp, dest)

    def download(self, key: str, path: Path) -> None:
        source = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            shutil.copyfile(source, tmp)
            commit(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> None:
        self.upload(self.path(source), target)

    @contextlib.contextmanager
    def _writing(self, dest: Path) -> Iterator[Path]:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
        except OSError as err:
            raise StateError(f"cannot write {dest}: {err.strerror or err}") from err
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def _walk(base: Path) -> Iterator[Path]:
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            yield Path(dirpath) / name


class ObjectStore(Store):
    """An object store through obstore: S3 (and S3-compatible services: ``AWS_ENDPOINT_URL``;
    an ``http://`` endpoint such as a local MinIO is allowed), GCS, Azure, memory."""

    def __init__(self, url: str) -> None:
        from obstore.store import from_url

        self.url = url.rstrip("/")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        plain_http = bool(endpoint and endpoint.lower().startswith("http://"))
        try:
            if plain_http:  # e.g. a MinIO on the local network: allowed with nothing more
                self._store: obstore.store.ObjectStore = from_url(
                    self.url, client_options={"allow_http": True}
                )
            else:
                self._store = from_url(self.url)
        except Exception as err:
            raise StateError(f"cannot use {self.url}: {scrub(err)}") from err

    def _fail(self, doing: str, key: str, err: BaseException) -> StateError:
        return StateError(
            f"{self.url}: cannot {doing} {key}: {scrub(err)}",
            hint="check the bucket, the endpoint and the credentials in the environment",
        )

    def get(self, key: str) -> bytes | None:
        got = self.get_versioned(key)
        return None if got is None else got[0]

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        import obstore

        try:
            result = obstore.get(self._store, key)
            data = bytes(result.bytes())
        except FileNotFoundError:
            return None
        except Exception as err:
            raise self._fail("read", key, err) from err
        return data, result.meta["e_tag"] or ""

    def put(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, key, data)
        except Exception as err:
            raise self._fail("write", key, err) from err

    def create(self, key: str, data: bytes, *, durable: bool = True) -> str | None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            written = obstore.put(self._store, key, data, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return None
        except Exception as err:
            raise self._fail("write", key, err) from err
        return written["e_tag"] or "*"

    def replace(self, key: str, data: bytes, version: str, *, durable: bool = True) -> bool:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            obstore.put(self._store, key, data, mode={"e_tag": version})
        except (PreconditionError, AlreadyExistsError, FileNotFoundError):
            return False
        except Exception as err:
            raise self._fail("write", key, err) from err
        return True

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, key)
        except FileNotFoundError:
            return
        except Exception as err:
            raise self._fail("delete", key, err) from err

    def list(self, prefix: str = "") -> list[Entry]:
        import obstore

        entries = []
        try:
            for chunk in obstore.list(self._store, prefix or None, chunk_size=1000):
                for meta in chunk:
                    entries.append(Entry(meta["path"], meta["size"], meta["e_tag"] or ""))
        except FileNotFoundError:
            return []
        except Exception as err:
            raise self._fail("list", prefix or "/", err) from err
        return sorted(entries, key=lambda e: e.key)

    def sha256(self, key: str) -> str | None:
        import obstore

        digest = hashlib.sha256()
        try:
            for chunk in obstore.get(self._store, key):
                digest.update(chunk)
        except FileNotFoundError:
            return None
        except Exception as err:
            raise self._fail("read", key, err) from err
        return digest.hexdigest()

    def head(self, key: str) -> Entry | None:
        import obstore

        try:
            meta = obstore.head(self._store, key)
        except FileNotFoundError:
            return None
        except Exception as err:
            raise self._fail("read", key, err) from err
        return Entry(meta["path"], meta["size"], meta["e_tag"] or "")

    def upload(self, path: Path, key: str) -> None:
        import obstore

        try:  # multipart, 8 MB parts, 4 in flight: a large video never sits whole in memory
            obstore.put(self._store, key, path, chunk_size=UPLOAD_PART, max_concurrency=4)
        except Exception as err:
            raise self._fail("upload", key, err) from err

    def download(self, key: str, path: Path) -> None:
        import obstore

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            result = obstore.get(self._store, key)
            with tmp.open("wb") as out:
                for chunk in result:
                    out.write(chunk)
            commit(tmp, path)
        except FileNotFoundError as err:
            raise StateError(f"{self.url}: no object {key}") from err
        except StateError:
            raise
        except Exception as err:
            raise self._fail("download", key, err) from err
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: str, target: str) -> None:
        import obstore

        try:
            obstore.copy(self._store, source, target)
        except Exception as err:
            raise self._fail("copy to", target, err) from err


def scrub(err: BaseException) -> str:
    """An error from a store as one line, without any credential the environment holds
    (obstore's messages can carry request details)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = text.split(": <?xml", 1)[0]  # an S3 error body adds nothing for a user
    for name in _SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(err).__name__}: {text}"


PROBE_PREFIX = ".mmgen/probe-"


def check_conditional_writes(store: Store, run_id: str) -> None:
    """Refuse a store that ignores create-only writes: claims there would not stop a second
    payment. Writes a probe object twice (the second write must be refused), then removes it."""
    key = f"{PROBE_PREFIX}{run_id}"
    try:
        if store.create(key, b"probe") is None:
            raise StateError(f"{store.url}: the probe object {key} exists already")
        if store.create(key, b"probe again") is not None:
            raise StateError(
                f"{store.url} ignores conditional writes: a second create-only write "
                "(If-None-Match: *) succeeded, so claims could not stop two runners paying "
                "for the same video",
                hint="use a store that supports conditional writes (AWS S3, GCS, Azure, "
                "MinIO, R2) or a local folder",
            )
    finally:
        with contextlib.suppress(StateError):
            store.delete(key)
