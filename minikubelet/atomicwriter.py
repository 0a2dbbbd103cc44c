"""The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go): how secret, configMap, downwardAPI and
projected volumes change their files so that a reader never sees half an update.

The volume directory holds the user-visible names as symlinks into ``..data``, itself a symlink to a
timestamped directory that holds the real files (what ``ls -la`` shows inside a pod)::

    ca.crt    -> ..data/ca.crt
    namespace -> ..data/namespace
    token     -> ..data/token
    ..data    -> ..2026_01_31_12_00_00.123456789
    ..2026_01_31_12_00_00.123456789/{ca.crt,namespace,token}

Rules of :func:`write`:

1. Paths are relative, without ``..`` elements, and may not start with ``..``.
2. Nothing is written when every file already has the same content and mode and no file goes away.
3. Otherwise the payload is written into a new ``..<UTC timestamp>.<random>`` directory (mode 0755),
   each file with its own mode; ``..data_tmp`` is made to point at it and renamed over ``..data``
   (one atomic rename switches every file at once).
4. Missing user-visible symlinks are created, the names no longer in the payload removed, and the
   previous timestamped directory deleted.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


class PayloadError(ValueError):
    """A payload path breaks rule 1."""


def validate_path(path: str) -> None:
    """Rule 1 (validatePath)."""
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if os.path.isabs(path):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if ".." in path.split("/"):
        raise PayloadError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")


def _unchanged(ts_dir: str, payload: Mapping[str, FileProjection]) -> bool:
    for path, proj in payload.items():
        full = os.path.join(ts_dir, path)
        try:
            with open(full, "rb") as f:
                if f.read() != proj.data or (os.stat(full).st_mode & 0o7777) != proj.mode:
                    return False
        except OSError:
            return False
    return True


def _visible(target: str) -> set[str]:
    return {name for name in os.listdir(target) if not name.startswith("..")} if os.path.isdir(target) else set()


def write(target: str, payload: Mapping[str, FileProjection]) -> bool:
    """Rules 1-4; True if anything changed."""
    for path in payload:
        validate_path(path)
    os.makedirs(target, exist_ok=True)
    data_link = os.path.join(target, DATA_DIR)
    old_ts = os.readlink(data_link) if os.path.islink(data_link) else ""
    wanted = {p.split("/", 1)[0] for p in payload}
    stale = _visible(target) - wanted
    if old_ts and not stale and _unchanged(os.path.join(target, old_ts), payload):
        return False
    stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    ts_dir = tempfile.mkdtemp(prefix=stamp, dir=target)
    os.chmod(ts_dir, 0o755)
    for path, proj in payload.items():
        full = os.path.join(ts_dir, path)
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        with open(full, "wb") as f:
            f.write(proj.data)
        os.chmod(full, proj.mode)
    tmp_link = os.path.join(target, DATA_DIR_TMP)
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(ts_dir), tmp_link)
    os.rename(tmp_link, data_link)
    for name in wanted:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR, name), link)
    for name in stale:
        os.unlink(os.path.join(target, name))
    if old_ts:
        shutil.rmtree(os.path.join(target, old_ts), ignore_errors=True)
    return True
