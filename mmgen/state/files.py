"""Durable file operations shared by the records, the client and the runner: a folder's fsync,
a finished temp file committed over its destination, and an atomic link-or-copy."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from mmgen.errors import StateError


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename or a new file in it survives power loss (where possible)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp_path: Path, dest: Path) -> None:
    """fsync the finished temp file, rename it over ``dest`` and fsync the folder."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_path, dest)
    fsync_dir(dest.parent)


def link_or_copy(src: Path, dst: Path, *, durable: bool = True) -> None:
    """Make ``dst`` hold ``src``'s bytes — a hard link, or a copy where links fail —
    atomically (a temp name, then a rename): a reader never sees a half-written ``dst``.
    ``durable``: fsync the folder too, so the new name survives power loss."""
    with contextlib.suppress(OSError):
        if src.samefile(dst):
            return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_dir(dst.parent)


def publish(out_dir: Path, source: str, target: str, *, durable: bool = True) -> None:
    """Make ``target`` (e.g. ``NAME.mp4``) hold the video in ``source`` (a version file):
    a hard link or a copy, atomically; a StateError when the out dir cannot be written.

    ``durable=False`` for the current ``NAME.mp4``: it is derived (the version file and its
    record are durable, and the next plan restores a lost link), so it costs no fsync."""
    if source == target:
        return
    try:
        link_or_copy(out_dir / source, out_dir / target, durable=durable)
    except OSError as err:
        raise StateError(f"cannot write {out_dir / target}: {err.strerror or err}") from err
