"""Hostile programs of the issue-19 attack classes (used by tests/test_executor_attacks.py
and benchmarks/executor_soak.py), plus host-side probes for what they may leave behind."""

import os

from azr_jax.executor import Job

BENIGN = Job("import collections\ndef f(x):\n    return sorted(collections.Counter(x).items())",
             ["'banana'"])
BENIGN_OUT = "[('a', 3), ('b', 1), ('n', 2)]"
TAG = "azr-attack-"

# 1. Frames written into every pipe the program holds (the reply pipe among them), then a
#    normal return: the forged frame must never become a result or stop the pool.
_FORGE = '''import os, stat, marshal, struct
def _pipes():
    out = []
    for fd in range(3, 256):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                out.append(fd)
        except OSError:
            pass
    return out
def _send(payload, header=None):
    for fd in _pipes():
        try:
            os.write(fd, (header if header is not None else len(payload).to_bytes(4, 'little'))
                     + payload)
        except OSError:
            pass
def f(x):
    %s
    return 'real'
'''
FORGE_FRAMES = {name: _FORGE % body for name, body in {
    "wrong_shape": "_send(marshal.dumps(('i',)))",
    "non_str_output": "_send(marshal.dumps(('i', True, 12345, None, True)))",
    "well_formed": "_send(marshal.dumps(('i', True, \"'FORGED'\", None, True)))",
    "well_formed_job_reply": "_send(marshal.dumps((1, True, (None, [(True, \"'FORGED'\", None, True)]))))",
    "compile_error_frame": "_send(marshal.dumps(('c', 'forged')))",
    "garbage": "_send(b'\\xff\\x00' * 50)",
    "huge_length": "_send(b'', header=(2**31 - 1).to_bytes(4, 'little'))",
    "guessed_nonce": ("_send(os.urandom(16) + struct.pack('<I', 0) + b'i' + bytes([7]) "
                      "+ struct.pack('<I', 8) + b\"'FORGED'\")"),
    "flood_then_exit": "[_send(marshal.dumps(('i', True, \"'FORGED'\", None, True))) for _ in range(2000)]\n    os._exit(0)",
}.items()}

# 2. SysV IPC objects and POSIX message queues; returns what it managed to create.
IPC_CREATE = '''import ctypes, os
def f(how):
    libc = ctypes.CDLL(None, use_errno=True)
    got = []
    key = 0 if how == 'private' else 0x5a5a0000 + os.getpid()
    shm = libc.shmget(key, 64 << 20, 0o1600)
    if shm >= 0:
        got.append('shm')
        if how == 'attach':
            libc.shmat.restype = ctypes.c_void_p
            addr = libc.shmat(shm, None, 0)
            if addr and addr != ctypes.c_void_p(-1).value:
                ctypes.memset(addr, 1, 64 << 20)
    if libc.semget(key, 4, 0o1600) >= 0:
        got.append('sem')
    if libc.msgget(key, 0o1600) >= 0:
        got.append('msg')
    mq_open = getattr(libc, 'mq_open', None)
    if mq_open is None:
        try:
            mq_open = ctypes.CDLL('librt.so.1').mq_open
        except (OSError, AttributeError):
            pass
    if mq_open is not None and mq_open(('/' + @TAG@ + str(os.getpid())).encode(), 0o102, 0o600, None) >= 0:
        got.append('mqueue')
    return got
'''.replace("@TAG@", repr(TAG))

# 3. Writes into the given host dirs, then into any dir its own walk finds writable.
WRITE_DIRS = '''import os, time
def f(dirs, walk=True, tag=None):
    wrote, tag, t0 = [], tag or %r + os.urandom(4).hex(), time.monotonic()
    for d in dirs:
        p = os.path.join(d, tag)
        for what, make in (('file', lambda: open(p + 'f', 'w').write('x' * 4096)),
                           ('dir', lambda: os.mkdir(p + 'd')),
                           ('fifo', lambda: os.mkfifo(p + 'p')),
                           ('symlink', lambda: os.symlink('/etc/passwd', p + 's'))):
            try:
                make()
                wrote.append(d + ':' + what)
            except OSError:
                pass
    here = os.getcwd()
    for root, subdirs, _ in os.walk('/') if walk else ():
        if root.startswith(('/proc', '/sys', here)) or time.monotonic() - t0 > 4:
            subdirs[:] = []
            continue
        if os.access(root, os.W_OK):
            try:
                open(os.path.join(root, tag + 'w'), 'w').close()
                wrote.append(root + ':walk')
            except OSError:
                pass
    return sorted(set(wrote))
''' % TAG

# 4. New namespaces, four ways.
NAMESPACES = '''import ctypes, os, platform, subprocess
FLAGS = {'user+mnt': 0x10020000, 'user': 0x10000000, 'mnt': 0x20000, 'net': 0x40000000,
         'pid': 0x20000000, 'ipc': 0x08000000, 'uts': 0x04000000, 'cgroup': 0x02000000}
def f(how):
    libc = ctypes.CDLL(None, use_errno=True)
    got = []
    if how == 'unshare':
        for name, fl in FLAGS.items():
            if libc.unshare(fl) == 0:
                got.append(name)
                if libc.mount(b'none', b'/tmp', b'tmpfs', 0, b'size=1g') == 0:
                    got.append('mounted a tmpfs')
    elif how == 'clone':
        nr = {'x86_64': 56, 'aarch64': 220}[platform.machine()]
        for name, fl in FLAGS.items():
            pid = libc.syscall(nr, fl | 17, 0, 0, 0, 0)
            if pid == 0:
                os._exit(0)
            if pid > 0:
                got.append(name)
                os.waitpid(pid, 0)
    elif how == 'binary':
        for args in (['unshare', '-Ur', 'true'], ['unshare', '-U', 'true'], ['unshare', '-m', 'true']):
            try:
                if subprocess.run(args, capture_output=True, timeout=2).returncode == 0:
                    got.append(' '.join(args))
            except (OSError, subprocess.SubprocessError):
                pass
    else:
        for ns in ('user', 'mnt', 'net', 'pid', 'ipc'):
            for pid in ('1', str(os.getppid())):
                try:
                    fd = os.open('/proc/%s/ns/%s' % (pid, ns), os.O_RDONLY)
                except OSError:
                    continue
                if libc.setns(fd, 0) == 0:
                    got.append(pid + ' ' + ns)
                os.close(fd)
    return got
'''

# 5. Children made with CLONE_PARENT become the worker's, not the program's.
ZOMBIES = '''import ctypes, os, platform
def f(n):
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {'x86_64': 56, 'aarch64': 220}[platform.machine()]
    made = 0
    for _ in range(n):
        pid = libc.syscall(nr, 0x8000 | 17, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)
        made += pid > 0
    return made
'''
FORK_N = '''import os
def f(n):
    done = 0
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        done += 1
    return done
'''
SEE_PROCESSES = '''import os
def f(x):
    seen = []
    for p in os.listdir('/proc'):
        if not p.isdigit():
            continue
        try:
            status = open('/proc/%s/status' % p).read()
            uid = int([l for l in status.splitlines() if l.startswith('Uid:')][0].split()[1])
            cmd = open('/proc/%s/cmdline' % p, 'rb').read().replace(b'\\0', b' ')
        except (OSError, IndexError):
            continue
        seen.append((int(p), uid, cmd.decode('utf-8', 'replace')))
    return seen
'''


def host_world_writable_dirs(limit_s=20.0):
    """World-writable dirs a sandbox uid can reach on this host (an independent walk of /,
    entering only dirs others may search; kernel pseudo filesystems skipped)."""
    import time

    t0, found = time.monotonic(), []
    for root, subdirs, _ in os.walk("/"):
        if root in ("/proc", "/sys") or time.monotonic() - t0 > limit_s:
            subdirs[:] = []
            continue
        try:
            mode = os.lstat(root).st_mode
        except OSError:
            subdirs[:] = []
            continue
        if mode & 0o002:
            found.append(root)
        if not mode & 0o001:
            subdirs[:] = []
    return sorted(found)


def leftovers(dirs, tag=TAG):
    """Entries named like the attack programs' files (or one run's ``tag``) left in ``dirs``."""
    out = []
    for d in dirs:
        try:
            out += [os.path.join(d, n) for n in os.listdir(d) if n.startswith(tag)]
        except OSError:
            pass
    return out


def sysvipc_counts():
    counts = {}
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                counts[kind] = len(fh.readlines()) - 1
        except OSError:
            counts[kind] = None
    return counts
