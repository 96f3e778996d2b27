"""Atomic file and folder writes: readers see the old or the new content, never half of one."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from codesign.procs import pid_alive


def write_atomic(path: Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_text_if_changed(path: Path, text: str) -> bool:
    """:func:`write_text_atomic` unless ``path`` already holds ``text``; whether it wrote."""
    try:
        if path.read_bytes() == text.encode("utf-8"):  # bytes: CSV rows end in \r\n
            return False
    except OSError:
        pass
    write_text_atomic(path, text)
    return True


def replace_dir_atomic(target: Path, builder: Callable[[Path], object]) -> Path:
    """Build a folder with ``builder(tmp_dir)``, then swap it in for ``target``.

    If ``builder`` fails, ``target`` is untouched. The swap is two renames (old → aside,
    new → target); the old folder is deleted only after the new one is in place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.{_owner()}.", dir=target.parent))
    try:
        builder(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.{_owner()}.", dir=target.parent))
        aside.rmdir()
        os.replace(target, aside)
    os.replace(tmp, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return target


def _host() -> str:
    """This host's name as it stands in a staging folder's name (no dots: they separate parts)."""
    return socket.gethostname().replace(".", "_")


def _owner() -> str:
    """``<host>-<pid>``: who stages a folder (a later run removes it once that process is gone)."""
    return f"{_host()}-{os.getpid()}"


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging folders (``.<name>.new.*`` / ``.<name>.old.*``) that a killed
    :func:`replace_dir_atomic` for ``target`` left behind: those staged on this host by a process
    that no longer runs (another host's, or a live process's, are left alone). Returns them."""
    host = _host()
    removed = []
    for kind in ("new", "old"):
        for p in target.parent.glob(f".{target.name}.{kind}.*"):
            owner = p.name.removeprefix(f".{target.name}.{kind}.").split(".", 1)[0]
            who, _, pid = owner.rpartition("-")
            if who == host and pid.isdigit() and not pid_alive(int(pid)) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed
