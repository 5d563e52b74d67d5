"""Is a cell complete? The kernel's is_complete answer, as a pure function.

Pure (no I/O, no kernel state), so the UI can give Enter the same verdict
at once for an ipytui kernel, without a round trip that keys typed meanwhile
could overtake.
"""

from __future__ import annotations

import codeop
import io
import tokenize
import warnings
from typing import Any

from ipytui.kernel.protocol.syntax import transform_cell


def cell_is_complete(cell: str) -> dict[str, Any]:
    """The is_complete_reply content for a cell as typed (IPython syntax included)."""
    return is_complete_content(transform_cell(cell))


def is_complete_content(code: str) -> dict[str, Any]:
    """complete / incomplete (with the indent for the next line) / invalid."""
    if not code.strip():
        return {"status": "complete"}
    lines = code.rstrip("\n").split("\n")
    last = lines[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compiled = codeop.compile_command(code + ("\n" if code.endswith("\n") else ""), "<input>", "exec")
        except (SyntaxError, ValueError, OverflowError):
            return {"status": "invalid"}
    block_indent = _last_statement_indent(code)
    block_open = len(lines) > 1 and last.strip() and not code.endswith("\n\n") and block_indent
    if compiled is None or block_open:
        indent = block_indent if block_open else last[: len(last) - len(last.lstrip())]
        if last.rstrip().endswith(":"):
            indent += "    "
        return {"status": "incomplete", "indent": indent}
    return {"status": "complete"}


def _last_statement_indent(code: str) -> str:
    """The indentation of the last logical line: non-empty means inside a block.

    A continuation line inside brackets is not a block, and a last statement
    back at column 0 after a block has closed it.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return ""
    skip = (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    row, at_start = 0, True
    for tok in tokens:
        if tok.type == tokenize.NEWLINE:
            at_start = True
        elif tok.type not in skip and at_start:
            row, at_start = tok.start[0], False
    if not row:
        return ""
    line = code.splitlines()[row - 1]
    return line[: len(line) - len(line.lstrip())]
