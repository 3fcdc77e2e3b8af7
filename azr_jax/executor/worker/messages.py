"""Pool <-> worker messages on the worker's stdin/stdout: 4-byte little-endian length, then a
``marshal`` payload. Both ends are ours (programs never see these fds), so ``marshal`` is
fine here; what a program's child sends back is ``frames.py``'s checked binary layout.

The one codec of this protocol: the pool imports it as ``azr_jax.executor.worker.messages``,
the worker loads it as a sibling (stdlib only). The worker also sends its reused child's
requests with it (``reuse.py``: written by the worker, so trusted too); what comes back from
any child uses ``frames.py``.
"""

import marshal
import os

HDR = 4


def pack(obj):
    """One message: length prefix + marshal payload."""
    data = marshal.dumps(obj)
    return len(data).to_bytes(HDR, "little") + data


def unpack(buf):
    """Yield (message, bytes of ``buf`` used so far) for each complete message at its start,
    one at a time (a torn tail is left for the next read)."""
    pos = 0
    while len(buf) - pos >= HDR:
        n = int.from_bytes(buf[pos:pos + HDR], "little")
        if len(buf) - pos - HDR < n:
            return
        msg = marshal.loads(bytes(buf[pos + HDR:pos + HDR + n]))
        pos += HDR + n
        yield msg, pos


class Conn:
    """Blocking reader/writer of messages over two raw fds (the worker's end)."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, bytearray()

    def read(self):
        """The next message, or None at end of input."""
        while True:
            for msg, used in unpack(self.buf):
                del self.buf[:used]
                return msg
            chunk = os.read(self.rfd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk

    def write(self, obj):
        view = memoryview(pack(obj))
        while view:
            view = view[os.write(self.wfd, view):]
