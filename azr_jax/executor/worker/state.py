"""What a reused sandbox child checks between two programs (``isolation="reuse"``).

Loaded by ``serve.py`` (stdlib only). ``Baseline`` records, once per reused child, the state
a program could change and a later program could see; ``Baseline.changed()`` names the first
difference after a program, or returns None. Any difference discards the child (``reuse.py``).

Seen: ``sys.modules`` (names and module objects), the references held by every dict, list,
set, cell, class and instance reachable from a loaded module (module and class dicts,
``builtins``, ``os.environ``, ``sys.path``, warnings filters, closures, ...: compared by
identity); a change of a function's code or defaults, and any reach into frames or the
collector's object lists (audit events: they latch a one-way limit, see ``_install_latch``);
open fds (number, file, blocking flag); bytes left in the request pipe (they come before
the worker's token, in ``reuse.py``); threads; processes left by the program; cwd and the
sandbox dir's contents; signal handlers, blocked and pending signals, interval timers, the
wakeup fd; every rlimit, umask, nice value, CPU affinity; recursion limit, switch interval,
int digit limit, trace and profile hooks, gc state (enabled, thresholds, debug flags,
callbacks), ``atexit`` count.

Not seen (documented in README): state held in C that no Python object exposes (``putenv``
without ``os.environ``, ``os.register_at_fork`` hooks, C signal handlers, ``prctl`` and
memory mappings set through ctypes -- but importing ctypes changes ``sys.modules``), the
contents of objects that are not containers (a bytearray's bytes, an iterator's position), a
program that defeats the checker's own memory. The sandbox boundary itself (uid, namespaces,
seccomp, rlimits, no network) is the same as for ``isolation="process"``.
"""

import atexit
import gc
import operator
import os
import resource
import signal
import sys

import _signal  # getsignal without the enum wrapping (~1 us per signal instead of ~15)
import types

_HEAPTYPE = 1 << 9
_SKIP_WALK = (types.CodeType, types.FrameType, types.GeneratorType)
_WATCHED_KINDS = (dict, list, set, types.CellType)
_LATCH = resource.RLIMIT_MEMLOCK  # lowered for good by the audit hook (see _install_latch)
_AUDITED = frozenset({  # reaching the checker or patching classes/functions in place
    "object.__setattr__", "object.__delattr__", "object.__getattr__", "sys._getframe",
    "sys._current_frames", "sys.addaudithook", "gc.get_objects", "gc.get_referrers",
    "gc.get_referents", "sys.settrace", "sys.setprofile"})
_RLIMITS = sorted(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))
_SIGNALS = [s for s in range(1, signal.NSIG) if s not in (signal.SIGKILL, signal.SIGSTOP)]
_TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)


def watched(roots):
    """(watched, caches): every dict (class dicts included), list, set, cell, class and
    class instance reachable from ``roots`` (walking through functions and tuples; not into
    code objects or frames), and the ``cache_clear`` of each lru cache found. Caches that
    benign programs fill (lru caches, ``re``'s pattern cache) are emptied after each
    program, not compared. Dicts are walked even when the collector does not track them (a
    dict of strings, such as ``os.environ``'s)."""
    seen, todo, out, skip, clears = {id(r) for r in roots}, list(roots), [], set(), []
    re = sys.modules.get("re")
    if re is not None:
        skip.add(id(re._cache))
        clears.append(re._cache.clear)
    while todo:
        obj = todo.pop()
        kind = type(obj)
        if kind in _SKIP_WALK:
            continue
        if kind.__name__ == "_lru_cache_wrapper":
            skip.update(id(r) for r in gc.get_referents(obj) if type(r) is dict)
            clears.append(obj.cache_clear)
        elif kind in _WATCHED_KINDS or (
                kind.__flags__ & _HEAPTYPE and kind is not types.FunctionType):
            out.append(obj)
        for ref in gc.get_referents(obj):
            if id(ref) not in seen and (gc.is_tracked(ref) or type(ref) is dict):
                seen.add(id(ref))
                todo.append(ref)
    return [o for o in out if id(o) not in skip], clears


# A "closed" program names no module, no dunder outside these, none of the builtins that
# reach objects by name or run code, and no frame/code attribute: it cannot get a reference
# to any shared object, so only the latch needs checking after it (see ``closed``).
_DUNDERS_OK = frozenset({
    "__init__", "__new__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__getitem__",
    "__setitem__", "__delitem__", "__contains__", "__call__", "__add__", "__sub__", "__mul__",
    "__truediv__", "__floordiv__", "__mod__", "__pow__", "__neg__", "__abs__", "__bool__",
    "__name__", "__module__", "__qualname__", "__doc__", "__class__", "__classcell__",
    "__enter__", "__exit__", "__slots__", "__radd__", "__rmul__", "__and__", "__or__"})
_NAMES_BAD = frozenset({
    "getattr", "setattr", "delattr", "vars", "globals", "locals", "eval", "exec", "compile",
    "breakpoint", "open", "input", "help", "memoryview", "exit", "quit"})
_PREFIXES_BAD = ("f_", "gi_", "cr_", "ag_", "tb_", "co_")


def closed(code):
    """Whether a code object (and every code object nested in it) is a closed program."""
    todo = [code]
    while todo:
        co = todo.pop()
        for name in co.co_names:
            if (name.startswith("__") and name not in _DUNDERS_OK) or name in _NAMES_BAD or \
                    name.startswith(_PREFIXES_BAD):
                return False
        todo.extend(c for c in co.co_consts if type(c) is types.CodeType)
    return True


_BUILTIN_TYPES = (str, bytes, bytearray, int, float, complex, bool, list, tuple, dict, set,
                  frozenset, range, type(None), type, slice)


def warm_abc_caches():
    """Fill every loaded ABC's caches for the builtin types (``Counter(s)`` asks whether a
    str is a Mapping): otherwise the first such check in each reused child would change the
    cache and discard the child, and the next child would start without it again."""
    abcs = [v for m in list(sys.modules.values()) for v in list(getattr(m, "__dict__", {}).values())
            if isinstance(v, type) and hasattr(v, "_abc_impl")]
    for abc in abcs:
        for kind in _BUILTIN_TYPES:
            try:
                issubclass(kind, abc)
            except Exception:  # noqa: BLE001 - an ABC with a strict __subclasshook__
                pass


def _install_latch(armed):
    """An audit hook that, while ``armed[0]``, lowers RLIMIT_MEMLOCK for good on any event in
    ``_AUDITED``. A limit only goes down, so a program that then reaches this hook or the
    baseline cannot undo the mark (``changed`` compares every rlimit)."""
    setrlimit, audited = resource.setrlimit, _AUDITED

    def hook(event, _args):
        if armed[0] and event in audited:
            armed[0] = False
            setrlimit(_LATCH, (0, 0))

    sys.addaudithook(hook)


def _fd_state(fd):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_mode, os.get_blocking(fd))


class Baseline:
    """The state after the reused child's set-up; ``changed()`` compares against it.
    ``watch``: ``watched([sys.modules])`` as the worker found it before forking (the walk
    costs ~20 ms: done once per worker, not per child); ``extra``: objects the child added
    (its new ``__main__``)."""

    def __init__(self, wdir, request_fd, watch, extra):
        self.wdir, self.request_fd = wdir, request_fd
        self.armed = [False]
        self.containers, self.clears = watch[0] + list(extra), watch[1]
        for clear in self.clears:
            clear()
        self.refs = gc.get_referents(*self.containers)
        self.n_modules = len(sys.modules)
        self.fds = {int(fd): _fd_state(int(fd)) for fd in os.listdir("/proc/self/fd")
                    if _is_open(int(fd))}
        self.handlers = [_signal.getsignal(s) for s in _SIGNALS]  # kept alive: ids stay theirs
        self.scalars = _scalars()
        self.wdir_mode = os.stat(wdir).st_mode
        _install_latch(self.armed)
        self.latch = resource.getrlimit(_LATCH)

    def arm(self):
        self.armed[0] = True

    def changed(self, full=True, _is=operator.is_, _all=all, _map=map, _len=len,
                _modules=sys.modules, _referents=gc.get_referents, _getrlimit=resource.getrlimit):
        """None when nothing watched changed, else a short reason. The latch and the
        identity of every watched reference come first, with tools bound as defaults (a
        program cannot swap them without an audited event): only once they hold is any
        module-level helper trusted to run. ``full=False``: the program was ``closed`` (and
        imported nothing): the latch is all it could have moved."""
        self.armed[0] = False
        if _getrlimit(_LATCH) != self.latch:
            return "an audited event (class or function patched, frames or gc objects reached)"
        if not full:
            return None
        if _len(_modules) != self.n_modules:
            return "sys.modules changed"
        refs = _referents(*self.containers)
        if _len(refs) != _len(self.refs) or not _all(_map(_is, refs, self.refs)):
            return "module, builtins or shared object state changed"
        for clear in self.clears:
            clear()
        scalars = _scalars()
        if scalars != self.scalars:
            names = [k for k in self.scalars if scalars.get(k) != self.scalars[k]]
            return "process state changed: " + ", ".join(names or ["?"])
        fds = {}
        for fd in os.listdir("/proc/self/fd"):
            fd = int(fd)
            if _is_open(fd):
                fds[fd] = _fd_state(fd)
        if fds != self.fds:
            return "open file descriptors changed"
        if os.getcwd() != self.wdir or os.listdir(self.wdir) or \
                os.stat(self.wdir).st_mode != self.wdir_mode:
            return "cwd or the sandbox dir changed"
        return None


def _is_open(fd):
    """listdir of /proc/self/fd shows its own dir fd too; it is closed by the time we look."""
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _scalars():
    """Process and interpreter settings a program can change with one call."""
    mask = os.umask(0o077)
    os.umask(mask)
    wake = signal.set_wakeup_fd(-1)
    if wake != -1:
        signal.set_wakeup_fd(wake)
    return {
        "rlimits": [resource.getrlimit(r) for r in _RLIMITS if r != resource.RLIMIT_CPU]
        + [resource.getrlimit(resource.RLIMIT_CPU)[1]],
        "signals": [id(_signal.getsignal(s)) for s in _SIGNALS],  # by identity
        "sigmask": signal.pthread_sigmask(signal.SIG_BLOCK, []),  # (all blocked: see reuse)
        "sigpending": signal.sigpending(),
        "timers": [signal.getitimer(t) for t in _TIMERS],
        "wakeup_fd": wake, "umask": mask,
        "nice": os.getpriority(os.PRIO_PROCESS, 0), "affinity": os.sched_getaffinity(0),
        "recursion": sys.getrecursionlimit(), "switch": sys.getswitchinterval(),
        "int_digits": sys.get_int_max_str_digits(), "trace": sys.gettrace() is None,
        "profile": sys.getprofile() is None,
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_debug()),
        "atexit": atexit._ncallbacks(), "dlopen": sys.getdlopenflags(),
    }
