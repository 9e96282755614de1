"""A small filesystem of the test's own (a tmpfs it mounts and removes), and a way to fill it up."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(size: str = "8m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on a fresh folder; skips the test where mounting is not allowed."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="linepush-small-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(disk: Path) -> Path:
    """Write a file until ``disk`` has not a page left; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler
