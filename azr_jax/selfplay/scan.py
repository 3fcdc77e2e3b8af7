"""Linear-time readers for the answer patterns of the official reward code.

Each function returns what the regex named in its docstring returns (findall / search, the
official last- or first-match use is the caller's), in one pass over the text. The regexes
themselves backtrack: a lazy body with no closing token rescans the rest of the text from
every opener, and ```` ``` ```` followed by a long run of spaces is cubic (400 spaces took
4 s), so a policy under RL pressure could stall the host with one response.
"""

from __future__ import annotations

import dataclasses
import re
import string

_LANG_CHARS = frozenset(string.ascii_letters + string.digits + "_+-")
_BLANK = " \t"


@dataclasses.dataclass(frozen=True)
class Fence:
    """One fenced block: ``lang`` as written, ``body`` between the opener line and the
    closing fence, ``inner`` everything between the two ```` ``` ````."""

    lang: str
    body: str
    inner: str


def fences(text: str) -> list[Fence]:
    """``re.findall(r"```[ \\t]*([A-Za-z0-9_+-]*)[ \\t]*\\n?(.*?)\\n?[ \\t]*```", text, re.S)``
    as Fences: the opener's parts are greedy and no backtick can be among them, so the
    closing fence is the first ```` ``` ```` after them; the lazy body then ends at the
    start of the ``\\n?[ \\t]*`` run before it."""
    out, pos, n = [], 0, len(text)
    while (p := text.find("```", pos)) >= 0:
        i = p + 3
        while i < n and text[i] in _BLANK:
            i += 1
        j = i
        while j < n and text[j] in _LANG_CHARS:
            j += 1
        k = j
        while k < n and text[k] in _BLANK:
            k += 1
        if k < n and text[k] == "\n":
            k += 1
        q = text.find("```", k)
        if q < 0:  # no closer after this opener: none after any later opener either
            break
        e = q
        while e > k and text[e - 1] in _BLANK:
            e -= 1
        if e > k and text[e - 1] == "\n":
            e -= 1
        out.append(Fence(text[i:j], text[k:e], text[p + 3:q]))
        pos = q + 3
    return out


_THINK_ANSWER = re.compile(r"</think>\s*<answer>")  # a literal, one bounded \s* run


def has_think_answer(text: str) -> bool:
    """``re.match(r"\\s*<think>.*?</think>\\s*<answer>.*?</answer>", text, re.S)``: a match
    exists iff the first ``</think>\\s*<answer>`` after the opening ``<think>`` is followed
    by some ``</answer>``."""
    body = text.lstrip()
    if not body.startswith("<think>"):
        return False
    found = _THINK_ANSWER.search(body, len("<think>"))
    return found is not None and body.find("</answer>", found.end()) >= 0


def _ci(literal: str) -> re.Pattern:
    return re.compile(re.escape(literal), re.IGNORECASE)


_CALL_HEADS = {w: re.compile(rf"{w}\s*\(", re.IGNORECASE) for w in ("input", "output")}


def call_args(text: str, word: str) -> list[str]:
    """``re.findall(rf"{word}\\s*\\((.*?)\\)", text, re.S | re.I)``: from each head to the
    next ``)``; once a head has no ``)`` after it, no later head has."""
    out, pos = [], 0
    while (head := _CALL_HEADS[word].search(text, pos)) is not None:
        close = text.find(")", head.end())
        if close < 0:
            break
        out.append(text[head.end():close])
        pos = close + 1
    return out


_TAGS = {w: (_ci(f"<{w}>"), _ci(f"</{w}>")) for w in ("input", "output")}


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():  # str.isspace is re's \s
        i += 1
    return i


def tag_bodies(text: str, word: str) -> list[str]:
    """``re.findall(rf"<{word}>\\s*(.*?)(?:</{word}>|\\s*$)", text, re.S | re.I)``: each body
    ends at the next closing tag, or where only whitespace is left (then the match runs to
    the end of the text)."""
    opener, closer = _TAGS[word]
    tail = len(text.rstrip())  # from here on only whitespace: where \s*$ matches
    out, pos = [], 0
    while (m := opener.search(text, pos)) is not None:
        start = _skip_space(text, m.end())
        close = closer.search(text, start)
        end = max(tail, start)
        if close is not None and close.start() < end:
            out.append(text[start:close.start()])
            pos = close.end()
        else:
            out.append(text[start:end])
            break
    return out


def first_tagged(text: str, word: str) -> str | None:
    """``re.search(rf"<{word}>\\s*(.*?)\\s*</{word}>", text, re.S | re.I).group(1)``: the
    first opener, up to the first closer after it, whitespace trimmed at both ends."""
    m = _ci(f"<{word}>").search(text)
    if m is None:
        return None
    start = _skip_space(text, m.end())
    close = _ci(f"</{word}>").search(text, start)
    if close is None:  # no closer after the first opener: none after a later one either
        return None
    end = close.start()
    while end > start and text[end - 1].isspace():
        end -= 1
    return text[start:end]
