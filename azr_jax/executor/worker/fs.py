"""Filesystem clean-up inside a sandbox worker (stdlib only, no recursion, no path walks).

Everything here touches trees a program built, so it never follows a symlink, never opens
anything that could block (no reads; dirs opened with O_DIRECTORY|O_NOFOLLOW|O_NONBLOCK),
keeps two fds open at most, and handles any depth: subdirectories are first moved up
to the top dir (rename), so no path grows longer than one name.
"""

import os

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_STEPS = 2_000_000  # entries; a tmpfs of a few hundred MB holds fewer


def rmtree(path):
    """Remove ``path`` and everything below it; returns whether it is gone."""
    try:
        os.rmdir(path)  # the fast path: an empty sandbox dir
        return True
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        top = os.open(path, _DIR_FLAGS)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return not os.path.lexists(path)
    try:
        _empty(top)
    finally:
        os.close(top)
    try:
        os.rmdir(path)
    except OSError:
        pass
    return not os.path.lexists(path)


def _empty(top):
    """Empty the dir open as ``top``: files are unlinked, subdirs renamed into ``top`` and
    emptied in turn (then removed), so no descent ever gets deeper than one level."""
    pending, steps = [], [0, 0]  # names of subdirs of top still to empty; [entries, renames]
    _clear(top, top, pending, steps)
    while pending and steps[0] < _MAX_STEPS:
        name = pending.pop()
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=top)
        except OSError:
            continue
        try:
            _clear(fd, top, pending, steps)
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=top)
        except OSError:
            pass


def _clear(fd, top, pending, steps):
    """Unlink the files in dir ``fd``; subdirs go to ``pending`` (moved into ``top`` first)."""
    try:
        entries = list(os.scandir(fd))
    except OSError:
        return
    for entry in entries:
        steps[0] += 1
        try:
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.name, dir_fd=fd)
                continue
            if os.getuid() != 0:  # without root, a mode-000 dir could not be entered
                os.chmod(entry.name, 0o700, dir_fd=fd)
            if fd == top:
                pending.append(entry.name)
                continue
            while True:
                steps[1] += 1
                name = ".azr-rm-%d" % steps[1]
                if not _exists(name, top):
                    break
            os.rename(entry.name, name, src_dir_fd=fd, dst_dir_fd=top)
            pending.append(name)
        except OSError:
            pass


def _exists(name, dir_fd):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


class Watch:
    """World-writable host dirs the sandbox uids can write (no mount namespace): after each
    program, a dir whose mtime/ctime moved has the entries the sandbox uids own removed.
    Two ``stat`` calls per dir per program when nothing changed."""

    def __init__(self, dirs, uids):
        self.uids = set(uids)
        self.state = {d: _stamp(d) for d in dirs}

    def scrub(self):
        removed = 0
        for d, before in self.state.items():
            now = _stamp(d)
            if now == before:
                continue
            try:
                with os.scandir(d) as it:
                    mine = [e.path for e in it if _owner(e) in self.uids]
            except OSError:
                mine = []
            for path in mine:
                removed += rmtree(path)
            self.state[d] = _stamp(d)
        return removed


def _stamp(path):
    try:
        st = os.stat(path, follow_symlinks=False)
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)
    except OSError:
        return None


def _owner(entry):
    try:
        return entry.stat(follow_symlinks=False).st_uid
    except OSError:
        return None
