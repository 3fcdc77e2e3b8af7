"""Math answers: extraction from model text and string normalisation.

Extraction looks for the last ``\\boxed{...}`` (or ``\\fbox{...}``), then a final-answer
line ("The final answer is 42", "Answer: 42", "#### 42"), then optionally the last number.
Normalisation follows the usual MATH conventions (Hendrycks et al.): strip ``$``, spaces,
``\\left``/``\\right``, units in ``\\text{}``, degree signs, "x =" prefixes; ``\\dfrac`` ->
``\\frac``; ``\\frac12`` -> ``\\frac{1}{2}``; thousands separators.
"""

from __future__ import annotations

import re

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_FINAL_LINE = re.compile(
    r"answer\s*(?:is\b|:|=)\s*[:=]?\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_HASHES = re.compile(r"####\s*(.+)$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None  # unbalanced


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} (or ``\\boxed 5``), else None."""
    best, best_at = None, -1
    for command in _BOX_COMMANDS:
        at = text.rfind(command)
        if at <= best_at:
            continue
        rest = at + len(command)
        if rest < len(text) and text[rest] == "{":
            group = _braced(text, rest)
            if group is None:
                continue
            best, best_at = group[0], at
        elif rest < len(text) and text[rest] == " ":  # "\boxed 5": up to the next $ or space
            token = re.match(r" +([^\s$]+)", text[rest:])
            if token:
                best, best_at = token.group(1), at
    return best


def _clean_line_answer(answer: str) -> str:
    answer = re.sub(r"[.\s]+$", "", answer.strip())  # trailing sentence period
    return re.sub(r"^\$+|\$+$", "", answer).strip()


def extract_answer(text: str, *, last_number_fallback: bool = True) -> str | None:
    """The model's final answer in ``text``, or None when there is none."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pattern in (_HASHES, _FINAL_LINE):
        matches = pattern.findall(text)
        if matches:
            line = matches[-1]
            inner = extract_boxed(line)
            answer = _clean_line_answer(inner if inner is not None else line)
            if answer:
                return answer
    if last_number_fallback:
        numbers = _NUMBER.findall(text)
        if numbers:
            return numbers[-1]
    return None


_UNIT_TEXT = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z ]*\}\s*(\^\{?\d\}?)?$")


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}, \frac{a}b -> \frac{a}{b}
    def arg(rest: str) -> tuple[str, str]:
        if rest.startswith("{"):
            group = _braced(rest, 0)
            if group is not None:
                return "{" + group[0] + "}", rest[group[1]:]
        return ("{" + rest[0] + "}", rest[1:]) if rest else ("", "")

    out, rest = [], s
    while "\\frac" in rest:
        head, rest = rest.split("\\frac", 1)
        a, rest = arg(rest)
        b, rest = arg(rest)
        out.append(head + "\\frac" + a + b)
    return "".join(out) + rest


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)  # \sqrt3 -> \sqrt{3}


def normalize_answer(answer: str) -> str:
    """A canonical string for ``answer``; equal strings mean equal answers."""
    s = answer.strip()
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = s.replace("\n", "").replace("\\!", "").replace("\\,", "").replace("\\;", "")
    s = s.replace("\\ ", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("°", "")
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "")
    s = _UNIT_TEXT.sub("", s).strip()  # "5 \text{ cm}" -> "5"
    s = re.sub(r"\\(?:text|textbf|mbox|mathrm)\{(.*?)\}", r"\1", s)
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)  # "x = 5" -> "5"
    s = s.replace(" ", "")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)  # 1,000 -> 1000
    s = re.sub(r"\.$", "", s)
    s = _fix_sqrt(_fix_fracs(s))
    s = re.sub(r"^\\frac\{(-?\d+)\}\{(\d+)\}$", r"\1/\2", s)  # plain fraction: a/b
    if s.startswith("."):
        s = "0" + s
    s = re.sub(r"^(-?\d+)\.0+$", r"\1", s)  # 5.00 -> 5
    return s
