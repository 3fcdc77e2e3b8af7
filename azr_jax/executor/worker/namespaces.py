"""Namespace and filesystem steps of sandbox worker set-up (root only; stdlib + ctypes).

Loaded by ``setup.py``. Each step returns whether it worked; the worker reports
what it got (``SandboxPool.info()``), and docs/sandbox.md says what each missing piece
leaves open.
"""

import os
import re

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 0x200000
_KEEP_FLAGS = {"nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
               "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
# Kernel pseudo filesystems: nothing a program writes there outlives it as a file.
PSEUDO_FS = {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs",
             "securityfs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "binfmt_misc",
             "autofs", "efivarfs", "rpc_pipefs", "nsfs", "selinuxfs"}


def unshare(libc):
    """Enter new mount, network, IPC and (if the kernel allows) PID namespaces.
    Returns the set of namespaces entered ("pid" only if the PID one worked)."""
    base = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC
    if libc.unshare(base | CLONE_NEWPID) == 0:
        return {"mnt", "net", "ipc", "pid"}
    if libc.unshare(base) == 0:
        return {"mnt", "net", "ipc"}
    return set()


def deny_sysv_ipc():
    """In our own IPC namespace: no SysV segments, semaphores or message queues at all, and
    no POSIX message queues (each sysctl here is per IPC namespace)."""
    ok = True
    for path, value in (("/proc/sys/kernel/shmmni", "0"), ("/proc/sys/kernel/shmall", "0"),
                        ("/proc/sys/kernel/msgmni", "0"), ("/proc/sys/kernel/sem", "0 0 0 0"),
                        ("/proc/sys/fs/mqueue/queues_max", "0")):
        try:
            with open(path, "w") as fh:
                fh.write(value)
        except OSError:
            ok = False
    return ok


def mount_proc(libc):
    """A /proc of our PID namespace: programs see only their own processes (hidepid)."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    for opts in (b"hidepid=2", None):
        if libc.mount(b"proc", b"/proc", b"proc", flags, opts) == 0:
            return True
    return False


def mounts():
    """[(mount point, fs type, options)] from /proc/self/mountinfo, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            out.append((point, rfields[0] if rfields else "", fields[5]))
    return out


def remount_all_readonly(libc, skip=()):
    """Make every mount in our namespace read-only (a bind remount keeps its other flags):
    then no host path is writable by anyone in it, world-writable dirs included. Returns
    the mount points that stayed writable."""
    failed = []
    for point, _fs, opts in mounts():
        if point in skip or "ro" in opts.split(","):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for name in opts.split(","):
            flags |= _KEEP_FLAGS.get(name, 0)
        if libc.mount(None, point.encode(), None, flags, None) != 0:
            failed.append(point)
    # A mount listed twice (stacked) is remounted once per line; check what stayed writable.
    return sorted({p for p, _fs, o in mounts() if p not in skip and "ro" not in o.split(",")
                   and p in failed})


def world_writable_dirs(roots=None, limit=200_000):
    """World-writable dirs on every (non-pseudo) mounted filesystem, found by a walk that
    only enters dirs any uid may search (others cannot reach the rest either)."""
    table = mounts()
    if roots is None:
        roots = sorted({p for p, fs, _o in table if fs not in PSEUDO_FS})
    pseudo = {p for p, fs, _o in table if fs in PSEUDO_FS}
    found, seen, stack, visited = [], set(), list(roots), 0
    while stack and visited < limit:
        path = stack.pop()
        if path in pseudo:
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen or not (st.st_mode & 0o170000) == 0o040000:
            continue
        seen.add(key)
        visited += 1
        if st.st_mode & 0o002:
            found.append(path)
        if not st.st_mode & 0o001:  # others may not search it: nothing below is reachable
            continue
        try:
            with os.scandir(path) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            pass
    return sorted(found)
