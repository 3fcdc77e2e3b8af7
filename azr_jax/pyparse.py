"""`ast.parse` for text a model wrote: stdlib only, below everything (the executor's checks,
the answer reader and the diversity normaliser share it).

Python warns while compiling some texts (`1if x`: "invalid decimal literal"; a stray backslash
in a string: "invalid escape sequence"); on model output those warnings are noise on the console,
repeated every step, so they are silenced here (errors still raise)."""

from __future__ import annotations

import ast
import warnings


def parse_quietly(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(source, mode=mode)`` with compile-time SyntaxWarning/DeprecationWarning
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(source, mode=mode)
