"""A seccomp filter for sandbox workers and every program they fork (stdlib + ctypes only).

Installed once per worker, just before it execs its serving interpreter; filters survive
exec and fork, so the worker and all its programs run under it. It denies (EPERM) what no
test program needs and what escapes the per-program limits or outlives the program:

- new namespaces: ``unshare``, ``setns``, ``clone`` with any CLONE_NEW* flag (a user + mount
  namespace would let a program mount a tmpfs beyond its memory limit), mount calls;
- ``clone(CLONE_PARENT)`` (children re-parented onto the worker, never reaped by the program);
- SysV IPC objects and POSIX message queues (they outlive the program: host RAM);
- kernel keyrings (keys persist per uid), ``ptrace`` and ``process_vm_writev``;
- ``clone3`` answers ENOSYS (its flags sit behind a pointer a filter cannot read; libc then
  falls back to ``clone``, which is checked);
- any syscall of another ABI (x32, or i386 via ``int 0x80`` on x86_64).

Needs no privilege (it sets no_new_privs first, which also stops setuid binaries from
gaining rights). Supported on x86_64 and aarch64; elsewhere ``install`` returns False.
"""

import os
import platform
import struct

_EPERM, _ENOSYS = 1, 38
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# classic BPF opcodes
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
# seccomp_data offsets: nr (int), arch (u32), ip (u64), args[6] (u64, low word first)
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LO = 0, 4, 16

_CLONE_DENIED = (0x00008000  # CLONE_PARENT
                 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000  # NEWNS CGROUP UTS IPC
                 | 0x10000000 | 0x20000000 | 0x40000000)  # NEWUSER NEWPID NEWNET

# arch -> (AUDIT_ARCH value, clone nr, denied syscall numbers)
_ARCHES = {
    "x86_64": (0xC000003E, 56, dict(
        unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, ptrace=101,
        process_vm_writev=311, shmget=29, semget=64, msgget=68, mq_open=240, add_key=248,
        request_key=249, keyctl=250)),
    "aarch64": (0xC00000B7, 220, dict(
        unshare=97, setns=268, mount=40, umount2=39, pivot_root=41, ptrace=117,
        process_vm_writev=271, shmget=194, semget=190, msgget=186, mq_open=180, add_key=217,
        request_key=218, keyctl=219)),
}
_COMMON = dict(open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
               mount_setattr=442)
_CLONE3 = 435


def _program(machine):
    """The filter as a list of (code, jt, jf, k); None for an unsupported machine."""
    if machine not in _ARCHES:
        return None
    audit_arch, clone_nr, denied = _ARCHES[machine]
    denied = sorted(set(denied.values()) | set(_COMMON.values()))
    deny = ("deny",)
    prog = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, audit_arch),          # another ABI: deny
        deny,
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if machine == "x86_64":
        prog.append((_JGE_K, "deny", 0, 0x40000000))  # the x32 ABI
    for nr in denied:
        prog.append((_JEQ_K, "deny", 0, nr))
    prog += [
        (_JEQ_K, 0, 1, _CLONE3),
        (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS),
        (_JEQ_K, 0, 3, clone_nr),
        (_LD_W_ABS, 0, 0, _OFF_ARG0_LO),     # clone's flags (arg 0 on both arches)
        (_JSET_K, "deny", 0, _CLONE_DENIED),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_RET_K, 0, 0, _RET_ALLOW),
        deny,
    ]
    # Resolve: a bare ("deny",) is the EPERM return; "deny" as a jump target points at the
    # last instruction (the shared EPERM return).
    last = len(prog) - 1
    out = []
    for i, ins in enumerate(prog):
        if ins == deny:
            out.append((_RET_K, 0, 0, _RET_ERRNO | _EPERM))
            continue
        code, jt, jf, k = ins
        jt = last - i - 1 if jt == "deny" else jt
        jf = last - i - 1 if jf == "deny" else jf
        out.append((code, jt, jf, k))
    return out


def install(libc):
    """Install the filter on the calling thread (before exec: it is inherited by everything
    the worker forks). Returns whether it is in place."""
    import ctypes

    prog = _program(platform.machine())
    if prog is None:
        return False
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class _Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = _Fprog(len(prog), ctypes.addressof(buf))
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(pr_set_no_new_privs, 1, None, 0, 0) != 0:
        return False
    return libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.addressof(fprog), 0, 0) == 0


def active():
    """Whether this process runs under a seccomp filter (from /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") and line.split()[1] == "2" for line in fh)
    except (OSError, IndexError):
        return False


if __name__ == "__main__":  # a quick self-check: python azr_jax/executor/worker/seccomp.py
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    print("installed:", install(libc), "active:", active(), "pid", os.getpid())
