"""Real filesystem faults for tests: a read-only mount and a nearly full one (small tmpfs
mounts; the tests that need them skip where mounting is not allowed)."""

import os
import subprocess

import pytest


def _mount(path, options):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def _umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only_dir(tmp_path):
    """An empty directory on a read-only filesystem (writable first, for `seed` files)."""
    path = tmp_path / "ro"
    _mount(path, "size=4m")
    try:
        yield path
    finally:
        _umount(path)


def remount_read_only(path):
    r = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def small_disk(tmp_path):
    """`make(free_bytes)` -> a directory on a tmpfs with about `free_bytes` left."""
    made = []

    def make(free_bytes, size="8m"):
        path = tmp_path / f"disk{len(made)}"
        _mount(path, f"size={size}")
        made.append(path)
        st = os.statvfs(path)
        fill = st.f_bavail * st.f_frsize - free_bytes
        with open(path / ".filler", "wb") as f:
            f.write(b"\0" * max(0, fill))
        return path

    try:
        yield make
    finally:
        for path in made:
            _umount(path)
