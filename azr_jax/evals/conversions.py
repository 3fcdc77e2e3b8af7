"""Row conversions that the official AZR evaluation applies before posing a benchmark row as
a deduction/abduction task (absolute_zero_reasoner/data_construction/
process_code_reasoning_data.py on the paper branch; the rules are carried over, the code is
ours).

LiveCodeBench-Execution rows hold a LeetCode-style function under its own name and an input
written as the call (``maximumOddBinaryNumber(s = '010')``). The conversion renames the
called function ``f``, keeps only the call's arguments (``s = '010'``; keyword arguments
stay keyword arguments of ``f``) and adds the imports the code uses without importing them.
"""

from __future__ import annotations

import re

# (substrings that reveal a use, the import line added for it): the official list.
IMPORTS_WHEN_USED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("collections",), "import collections"),
    (("Counter",), "from collections import Counter"),
    (("gcd",), "from math import gcd"),
    (("deque",), "from collections import deque"),
    (("@cache",), "from functools import cache"),
    (("= inf", "[inf]", "inf)"), "from math import inf"),
    (("accumulate",), "from itertools import accumulate"),
    (("@lru_cache",), "from functools import lru_cache"),
    (("defaultdict",), "from collections import defaultdict"),
    (("bisect",), "import bisect"),
    (("islice",), "from itertools import islice"),
    (("math.inf",), "import math"),
    (("prod(",), "from math import prod"),
    (("heapify(",), "from heapq import heapify, heappop, heappush"),
    (("reduce(",), "from functools import reduce"),
    (("comb(",), "from math import comb"),
)
_DEF = re.compile(r"def\s+(\w+)\s*\(")
_CALLED = re.compile(r"^\s*(\w+)\s*\(")
# typing generics written without importing them (List[int]): the builtin generics work on
# Python >= 3.9. The official script lower-cases every "List"/"Dict"/"Tuple"/"Set" in the
# code, string literals included; only subscripted type names are touched here.
_TYPING_GENERIC = re.compile(r"\b(List|Dict|Tuple|Set)(?=\[)")


def add_imports(code: str) -> str:
    """``code`` with the import lines of ``IMPORTS_WHEN_USED`` it needs in front."""
    lines = [line for triggers, line in IMPORTS_WHEN_USED if any(t in code for t in triggers)]
    code = _TYPING_GENERIC.sub(lambda m: m.group(1).lower(), code)
    return "\n".join(lines + [code]) if lines else code


def lcb_execution_row(code: str, call: str) -> tuple[str, str]:
    """(program with the called function renamed ``f`` and imports added, the call's
    argument text). ValueError when the call names no function the code defines."""
    defined = _DEF.findall(code)
    if not defined:
        raise ValueError("the code defines no function")
    called = _CALLED.match(call)
    if not called:
        raise ValueError(f"input {call[:60]!r} is not a call name(...)")
    name = called.group(1)
    if name not in defined:
        raise ValueError(f"input calls {name!r}, which the code does not define "
                         f"(defined: {', '.join(defined)})")
    if name != "f":
        # the definition (official) and its recursive calls (else recursion raises NameError)
        code = re.sub(rf"(?<![\w.]){re.escape(name)}\s*\(", "f(", code)
    args = call.strip()[called.end():]
    if not args.endswith(")"):
        raise ValueError(f"input {call[:60]!r} does not end with ')'")
    return add_imports(code), args[:-1].strip()
