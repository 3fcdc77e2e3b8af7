"""Result frames from a program's child to its worker: a fixed binary layout, parsed and
checked field by field (never ``marshal``: its loader is not safe on hostile bytes).

The program runs in the same process as the code that reports its result, so it can reach
the reply pipe. What it can write there is therefore treated as hostile: every frame must
carry the per-program random nonce and the next sequence number, have a known kind and
well-typed fields within their limits; anything else fails that program (and only it).

Frame: 4-byte little-endian length n, then n bytes: nonce (16) | seq (u32) | kind (1) | body
  kind b"c" compile error: body = error text
  kind b"i" one input:     flags (u8: 1 ok, 2 deterministic, 4 has output, 8 has error)
                           | output length (u32) | output | error text
  kind b"x" script result: flags (u8: 1 ok, 8 has error) | status (i64) | error text
Texts are UTF-8 (surrogates passed through, as ``repr`` may return them).
"""

import os
import select
import struct

HDR = 4
NONCE_BYTES = 16
ERR_CHARS = 2000
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _text(s):
    return s.encode("utf-8", "surrogatepass")


class FrameWriter:
    """Child side: writes frames with the nonce and consecutive sequence numbers."""

    def __init__(self, wfd, nonce):
        self.wfd, self.nonce, self.seq = wfd, nonce, 0

    def write(self, frame):
        kind = frame[0]
        if kind == "c":
            body = b"c" + _text(frame[1])
        elif kind == "i":
            _, ok, out, err, det = frame
            flags = (1 if ok else 0) | (2 if det else 0) | (4 if out is not None else 0) | (
                8 if err is not None else 0)
            out_b = _text(out) if out is not None else b""
            body = b"i" + bytes([flags]) + _U32.pack(len(out_b)) + out_b + (
                _text(err) if err is not None else b"")
        else:  # "x"
            _, ok, status, err = frame
            status = max(_I64_MIN, min(_I64_MAX, int(status)))
            body = b"x" + bytes([(1 if ok else 0) | (8 if err is not None else 0)]) + \
                _I64.pack(status) + (_text(err) if err is not None else b"")
        data = self.nonce + _U32.pack(self.seq) + body
        self.seq += 1
        view = memoryview(len(data).to_bytes(HDR, "little") + data)
        while view:
            view = view[os.write(self.wfd, view):]


def decode(payload, nonce, seq, max_chars):
    """One frame's payload -> ("c", err) | ("i", ok, out, err, det) | ("x", ok, status, err).
    Raises ValueError for anything the real child would not have written."""
    head = NONCE_BYTES + 5
    if len(payload) < head or payload[:NONCE_BYTES] != nonce:
        raise ValueError("bad nonce")
    if _U32.unpack_from(payload, NONCE_BYTES)[0] != seq:
        raise ValueError("bad sequence number")
    kind, body = payload[head - 1:head], payload[head:]
    if kind == b"c":
        return ("c", _err_text(body))
    if kind == b"i" and len(body) >= 5:
        flags, n = body[0], _U32.unpack_from(body, 1)[0]
        if flags & ~15 or len(body) < 5 + n:
            raise ValueError("bad input frame")
        ok, det = bool(flags & 1), bool(flags & 2)
        out = body[5:5 + n].decode("utf-8", "surrogatepass") if flags & 4 else None
        err = _err_text(body[5 + n:]) if flags & 8 else None
        if (out is not None and len(out) > max_chars) or (ok and out is None) or (
                not ok and (err is None or out is not None)) or (not flags & 4 and n) or (not flags & 8 and len(body) > 5 + n):
            raise ValueError("inconsistent input frame")
        return ("i", ok, out, err, det)
    if kind == b"x" and len(body) >= 9:
        flags, status = body[0], _I64.unpack_from(body, 1)[0]
        if flags & ~9 or (not flags & 8 and len(body) > 9):
            raise ValueError("bad script frame")
        err = _err_text(body[9:]) if flags & 8 else None
        return ("x", bool(flags & 1), status, err)
    raise ValueError("unknown frame kind")


def _err_text(raw):
    text = raw.decode("utf-8", "surrogatepass")
    if len(text) > ERR_CHARS + 64:
        raise ValueError("error text too long")
    return text


def wait_frames(rfd, want, kinds, timeout_s, nonce, max_bytes, max_chars, clock, buf=None):
    """Collect ``want`` frames of the given kinds (a compile-error frame, first, ends it
    early); the deadline restarts after each. Returns (frames, error, timed_out); error names
    a forged or oversized frame. ``buf``: bytes read past the last frame are left there."""
    buf = bytearray() if buf is None else buf
    frames, poller = [], select.poll()
    poller.register(rfd, select.POLLIN)
    deadline = clock() + timeout_s
    while len(frames) < want:
        while len(buf) >= HDR:
            n = int.from_bytes(buf[:HDR], "little")
            if n > max_bytes:
                return frames, "result too large", False
            if len(buf) < HDR + n:
                break
            try:
                frame = decode(bytes(buf[HDR:HDR + n]), nonce, len(frames), max_chars)
                if frame[0] not in kinds or (frame[0] == "c" and frames):
                    raise ValueError("unexpected frame kind")
            except (ValueError, UnicodeDecodeError, struct.error):
                return frames, "forged or corrupt result frame (written by the program?)", False
            del buf[:HDR + n]
            frames.append(frame)
            if frame[0] == "c" or len(frames) >= want:
                return frames, None, False
            deadline = clock() + timeout_s
        left = deadline - clock()
        if left <= 0:
            return frames, None, True
        if not poller.poll(left * 1000.0):
            continue
        chunk = os.read(rfd, 1 << 16)
        if not chunk:
            break
        buf += chunk
        if len(buf) > max_bytes + HDR:
            return frames, "result too large", False
    return frames, None, False


def function_outcome(frames, n_inputs, reason):
    """(compile error, per-input runs) of a function job from its checked frames, for a fresh
    or a reused child alike: a compile-error frame ends the job; each input without a frame
    (deadline, crash, torn reply) fails with ``reason``."""
    if frames and frames[0][0] == "c":
        return (frames[0][1], [])
    runs = [f[1:] for f in frames]
    return (None, runs + [(False, None, reason, False)] * (n_inputs - len(runs)))
