"""Sandbox worker set-up (runs once per worker, before serving): private namespaces and a
view of the stdlib that the sandbox uid can read. Loaded by ``serve.py`` (stdlib only)."""

import marshal
import os
import sys


def _setup(cfg_hex, worker_path):
    """Enter private namespaces where allowed, install the seccomp filter, then exec
    ``worker_path`` as the serving interpreter (a fresh heap: ctypes does not stay in it)."""
    import ctypes

    cfg = marshal.loads(bytes.fromhex(cfg_hex))
    # The interpreter itself, not a venv's link to it (the venv may sit under /tmp, hidden
    # by the private tmpfs below); with -S the serving worker never reads site-packages.
    python = os.path.realpath(sys.executable)
    if cfg["uid"] is not None:  # unique while this worker lives: pools never share a uid
        cfg["uid"] += os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)
    ns_mod = _sibling("namespaces")
    seccomp = _sibling("seccomp")  # now: a private /tmp may hide this dir below
    cfg.update(netns=False, ns=[], rw_mounts=None, sbx_base=None, ipc_denied=False)
    if cfg["namespaces"]:
        try:
            worker_path = _enter_namespaces(cfg, libc, ns_mod, python, worker_path)
        except Exception:  # noqa: BLE001 - no namespaces: fall back (documented)
            cfg["netns"] = False
    if cfg["uid"] is not None and cfg["rw_mounts"] != []:
        # Host dirs the sandbox uid can still write: the worker removes what programs leave
        # in them (found now, by a walk, not from a list).
        roots = cfg["rw_mounts"]
        cfg["watch_dirs"] = ns_mod.world_writable_dirs(None if roots is None else roots)
    else:
        cfg["watch_dirs"] = []
    # No bind mount (no namespaces): the serving worker opens the unreadable stdlib dirs
    # and the children import through /proc/self/fd/N (only the opened dir is reachable).
    cfg["expose_fds"] = cfg["uid"] is not None and cfg.get("sys_path") is None and not all(
        _world_readable(p) for p in sys.path if os.path.isdir(p))
    cfg["seccomp"] = seccomp.install(libc)
    argv = [python, "-S", "-s", "-P", "-B", worker_path, "serve", marshal.dumps(cfg).hex()]
    os.execv(python, argv)


def _sibling(name):
    """As ``serve._import_sibling``: this dir on sys.path only while importing, the module
    kept as ``_azr_worker_<name>``."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        __import__(name)
    finally:
        del sys.path[0]
    module = sys.modules.pop(name)
    sys.modules["_azr_worker_" + name] = module
    return module


def _enter_namespaces(cfg, libc, ns_mod, python, worker_path):
    """Private mount, network, IPC and PID namespaces; every host mount read-only, private
    tmpfs over the scratch dirs. Returns the (maybe moved) worker path."""
    entered = ns_mod.unshare(libc)
    if "mnt" not in entered:
        return worker_path
    # Stop mount events propagating back to the host before mounting anything.
    if libc.mount(None, b"/", None, ns_mod.MS_REC | ns_mod.MS_PRIVATE, None) != 0:
        return worker_path
    if "pid" in entered:
        _become_pid1(libc)  # from here on we are the namespace's init (its pid 1)
    cfg["ipc_denied"] = ns_mod.deny_sysv_ipc()
    if "pid" in entered and not ns_mod.mount_proc(libc):
        entered.discard("pid")  # still a PID namespace, but /proc shows the host's
    # The worker's own code may live under /tmp (a checkout there): read it now, before
    # the private tmpfs hides it, and serve from a copy.
    sources = _read_worker_sources(worker_path)
    private = _private_dirs(python)
    opts = ("size=%dm,mode=0755" % cfg["tmpfs_mb"]).encode()
    mounted = [p for p in private if libc.mount(b"tmpfs", p.encode(), b"tmpfs",
                                                ns_mod.MS_NOSUID | ns_mod.MS_NODEV, opts) == 0]
    if "/tmp" in mounted:
        worker_path = _write_worker_sources(sources, worker_path)
    cfg["sbx_base"] = mounted[0] if mounted else None
    os.chdir("/")
    cfg["netns"] = True
    cfg["sys_path"] = _expose_stdlib(libc) if "/tmp" in mounted else None
    # Last: every other mount read-only (world-writable host dirs included). Our tmpfs
    # mounts stay writable for the worker; they are root's, mode 755, so not for programs.
    cfg["rw_mounts"] = ns_mod.remount_all_readonly(libc, skip=set(mounted))
    cfg["ns"] = sorted(entered)
    return worker_path


def _become_pid1(libc):
    """Fork after unshare(CLONE_NEWPID): the child is the new namespace's init and returns;
    killing this (outer) process kills it (PDEATHSIG), which kills every process in it."""
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = SIGKILL
        return
    devnull = os.open("/dev/null", os.O_RDWR)  # let go of the pool's pipes: EOF when it dies
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0x7F)


def _private_dirs(python):
    """World-writable scratch dirs that get a private tmpfs, except one holding the
    interpreter or its stdlib (hiding those would leave nothing to run)."""
    needed = [python] + [os.path.realpath(p) for p in sys.path if p]
    return [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d) and not any(
        n == d or n.startswith(d + "/") for n in needed)]


def _read_worker_sources(worker_path):
    """{file name: bytes} of the worker's modules (every ``.py`` in this folder)."""
    folder = os.path.dirname(worker_path)
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in os.listdir(folder) if name.endswith(".py")}


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
