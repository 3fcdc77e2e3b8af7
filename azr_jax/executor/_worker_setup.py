"""Sandbox worker set-up (runs once per worker, before serving): private namespaces and a
view of the stdlib that the sandbox uid can read. Loaded by ``_worker.py`` (stdlib only)."""

import marshal
import os
import sys


def _setup(cfg_hex, worker_path):
    """Enter private namespaces where allowed, then exec ``worker_path`` as the serving
    interpreter (a fresh heap: the ctypes import does not stay in it)."""
    cfg = marshal.loads(bytes.fromhex(cfg_hex))
    # The interpreter itself, not a venv's link to it (the venv may sit under /tmp, hidden
    # by the private tmpfs below); with -S the serving worker never reads site-packages.
    python = os.path.realpath(sys.executable)
    if cfg["uid"] is not None:  # unique while this worker lives: pools never share a uid
        cfg["uid"] += os.getpid()
    netns = False
    if cfg["namespaces"]:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            clone_newns, clone_newnet = 0x00020000, 0x40000000
            if libc.unshare(clone_newns | clone_newnet) == 0:
                ms_rec, ms_private = 0x4000, 0x40000
                # Stop mount events propagating back to the host before mounting anything.
                if libc.mount(None, b"/", None, ms_rec | ms_private, None) == 0:
                    # The worker's own code may live under /tmp (a checkout there): read it
                    # now, before the private tmpfs hides it, and serve from a copy.
                    sources = _read_worker_sources(worker_path)
                    private = _private_dirs(python)
                    opts = ("size=%dm,mode=0755" % cfg["tmpfs_mb"]).encode()
                    for path in private:
                        libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, opts)
                    if "/tmp" in private:
                        worker_path = _write_worker_sources(sources, worker_path)
                    os.chdir("/")
                    netns = True
                    cfg["sys_path"] = _expose_stdlib(libc)
        except Exception:  # noqa: BLE001 - no namespaces: fall back (documented)
            netns = False
    cfg["netns"] = netns
    # No bind mount (no namespaces): the serving worker opens the unreadable stdlib dirs
    # and the children import through /proc/self/fd/N (only the opened dir is reachable).
    cfg["expose_fds"] = cfg["uid"] is not None and cfg.get("sys_path") is None and not all(
        _world_readable(p) for p in sys.path if os.path.isdir(p))
    argv = [python, "-S", "-s", "-P", "-B", worker_path, "serve", marshal.dumps(cfg).hex()]
    os.execv(python, argv)


def _private_dirs(python):
    """World-writable scratch dirs that get a private tmpfs, except one holding the
    interpreter or its stdlib (hiding those would leave nothing to run)."""
    needed = [python] + [os.path.realpath(p) for p in sys.path if p]
    return [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d) and not any(
        n == d or n.startswith(d + "/") for n in needed)]


def _read_worker_sources(worker_path):
    """{file name: bytes} of the worker's modules (this dir's ``_worker*.py``)."""
    folder = os.path.dirname(worker_path)
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in os.listdir(folder) if name.startswith("_worker") and name.endswith(".py")}


def _write_worker_sources(sources, worker_path):
    """Write the worker's modules into the private /tmp; returns the new worker path."""
    folder = "/tmp/.azr-worker"
    os.makedirs(folder, mode=0o755, exist_ok=True)
    for name, data in sources.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(data)
    return os.path.join(folder, os.path.basename(worker_path))


def _world_readable(path):
    """Whether any uid can list ``path`` (every ancestor searchable by others)."""
    path = os.path.abspath(path)
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        mode = os.stat("/".join(parts[:i]) or "/").st_mode
        if not mode & 0o001 or (i == len(parts) and not mode & 0o004):
            return False
    return True


def _expose_stdlib(libc):
    """Bind-mount unreadable stdlib dirs (e.g. under /root) where the sandbox uid can read
    them; returns the sys.path the children use, or None if nothing needed it."""
    ms_bind = 4096
    new_path, changed, mapping = [], False, []
    os.makedirs("/tmp/.azr-lib", mode=0o755, exist_ok=True)
    for i, path in enumerate(p for p in sys.path if os.path.isdir(p)):
        if _world_readable(path):
            new_path.append(path)
            continue
        target = "/tmp/.azr-lib/%d" % i
        os.mkdir(target, 0o755)
        if libc.mount(path.encode(), target.encode(), None, ms_bind, None) != 0:
            return None
        new_path.append(target)
        mapping.append((path, target))
        changed = True
    return (new_path, mapping) if changed else None


def _expose_stdlib_fds():
    """Open each sys.path dir the sandbox uid cannot reach; returns (new_path, mapping, fds).

    A path through ``/proc/self/fd/N`` skips the permission checks on the dir's ancestors
    (e.g. /root, mode 700), so children keep these fds open and import through them."""
    new_path, mapping, fds = [], [], []
    for path in (p for p in sys.path if os.path.isdir(p)):
        if _world_readable(path):
            new_path.append(path)
            continue
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        target = "/proc/self/fd/%d" % fd
        new_path.append(target)
        mapping.append((path, target))
        fds.append(fd)
    return new_path, mapping, fds


def _use_exposed_stdlib(new_path, mapping):
    """Point sys.path and already-imported packages at the readable bind mounts."""
    sys.path[:] = new_path
    sys.path_importer_cache.clear()
    for mod in list(sys.modules.values()):
        paths = getattr(mod, "__path__", None)
        if not isinstance(paths, list):
            continue
        for i, p in enumerate(paths):
            for orig, target in mapping:
                if p == orig or p.startswith(orig + "/"):
                    paths[i] = target + p[len(orig):]
