"""Turn IPython syntax into plain Python calling the builtin ``__ipytui__``.

Only lines that would otherwise be a SyntaxError are rewritten, and only at
the start of a logical line (never inside a string, a bracket or after a
backslash continuation), so ``a != b``, ``x % y`` and ``f"{a!r}"`` stay
untouched. Every input line gives exactly one output line, so tracebacks
point at the line the user wrote.
"""

from __future__ import annotations

import ast
import re

SHELL = "__ipytui__"

_TARGET = r"%{0,2}[A-Za-z_][\w.]*(?:\[[^\]\n]*\])*"
_HELP_BEFORE = re.compile(rf"^(\s*)(\?\??)\s*({_TARGET})\s*$")
_HELP_AFTER = re.compile(rf"^(\s*)({_TARGET})(\?\??)\s*$")
_LINE_MAGIC = re.compile(r"^(\s*)%([A-Za-z_][\w.]*)(.*)$")
_SYSTEM = re.compile(r"^(\s*)(!!?)(.*)$")
_LHS = r"[A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*"
_ASSIGN = re.compile(rf"^(\s*)({_LHS})\s*=\s*(%(?!%)|!!?)(.*)$")
_CELL_MAGIC = re.compile(r"^\s*%%([A-Za-z_][\w.]*)(.*)$")
_LINES = re.compile(r"[^\n]*\n|[^\n]+$")


def _call(method: str, *args: object) -> str:
    return f"{SHELL}.{method}({', '.join(repr(a) for a in args)})"


def _magic_call(name: str, args: str) -> str:
    return _call("line_magic", name, args.strip())


def transform_line(body: str) -> str | None:
    """The Python for one logical line of IPython syntax, or None if it is plain Python."""
    if m := _HELP_BEFORE.match(body) or _HELP_AFTER.match(body):
        indent, target = m.group(1), m.group(3 if m.re is _HELP_BEFORE else 2)
        marks = m.group(2 if m.re is _HELP_BEFORE else 3)
        return indent + _call("pinfo", target, len(marks) - 1)
    if m := _LINE_MAGIC.match(body):
        return m.group(1) + _magic_call(m.group(2), m.group(3))
    if m := _SYSTEM.match(body):
        method = "getoutput" if m.group(2) == "!!" else "system"
        return m.group(1) + _call(method, m.group(3).strip())
    if m := _ASSIGN.match(body):
        indent, target, escape, rest = m.groups()
        if escape == "%":
            name, _, args = rest.partition(" ")
            if re.fullmatch(r"[A-Za-z_][\w.]*", name):
                return f"{indent}{target} = {_magic_call(name, args)}"
            return None
        return f"{indent}{target} = {_call('getoutput', rest.strip())}"
    return None


class _Scanner:
    """Tracks strings, brackets and continuations to find logical-line starts."""

    def __init__(self) -> None:
        self.quote: str | None = None
        self.depth = 0
        self.continued = False

    @property
    def at_statement_start(self) -> bool:
        return self.quote is None and self.depth == 0 and not self.continued

    def feed(self, line: str) -> None:
        body = line.rstrip("\r\n")
        self.continued = False
        i = 0
        while i < len(body):
            i = self._step(body, i)
        if self.quote in ("'", '"') and not body.endswith("\\"):
            self.quote = None  # an unterminated one-line string ends with its line

    def _step(self, body: str, i: int) -> int:
        char = body[i]
        if self.quote is not None:
            if char == "\\":
                return i + 2
            if body.startswith(self.quote, i):
                i += len(self.quote)
                self.quote = None
                return i
            return i + 1
        if char == "#":
            return len(body)
        if char in "'\"":
            self.quote = char * 3 if body.startswith(char * 3, i) else char
            return i + len(self.quote)
        if char in "([{":
            self.depth += 1
        elif char in ")]}":
            self.depth = max(0, self.depth - 1)
        elif char == "\\" and i == len(body) - 1:
            self.continued = True
        return i + 1


def _split_lines(code: str) -> list[str]:
    """Physical lines with their endings; only ``\\n`` ends a line, as for Python."""
    return _LINES.findall(code)


def _cell_magic(lines: list[str]) -> str | None:
    """``%%name args`` on the first non-blank line: the whole cell is one call."""
    blank = 0
    while blank < len(lines) and not lines[blank].strip():
        blank += 1
    if blank == len(lines):
        return None
    first = lines[blank].rstrip("\r\n")
    m = _CELL_MAGIC.match(first)
    if m is None or _HELP_AFTER.match(first) or _HELP_BEFORE.match(first):
        return None
    body = "".join(lines[blank + 1 :])
    if body and not body.endswith("\n"):
        body += "\n"
    call = _call("cell_magic", m.group(1), m.group(2).strip(), body)
    newlines = "".join(lines[blank:]).count("\n")  # keep the cell's line count
    return "".join(lines[:blank]) + call + "\n" * newlines


def transform_cell(code: str) -> str:
    """Rewrite a cell's IPython syntax (magics, ``!``, ``?``) as plain Python."""
    lines = _split_lines(code)
    whole = _cell_magic(lines)
    if whole is not None:
        return whole
    scanner = _Scanner()
    out: list[str] = []
    for line in lines:
        if scanner.at_statement_start:
            body = line.rstrip("\r\n")
            new = transform_line(body)
            if new is not None:
                line = new + line[len(body) :]
        scanner.feed(line)
        out.append(line)
    return "".join(out)


def assigned_names(code: str) -> list[str]:
    """Top-level names a cell assigns (what a crash in it may have lost)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return sorted(names)



def changed_names(code: str) -> list[str]:
    """Top-level names a cell may have changed, read from its source (for the timeline).

    The names it assigns or deletes, and the names whose item or attribute it
    sets or deletes (``d["k"] = 1``, ``del d["k"]``, ``obj.x += 1``) or on which
    it calls a method whose result it throws away (``lst.append(3)``,
    ``df.drop(columns=["b"], inplace=True)``): a call made for its effect. A
    guess from the source, never a proof: a function call can change anything.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    names = set(assigned_names(code))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
            names.add(node.id)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and \
                isinstance(node.ctx, (ast.Store, ast.Del)):
            names.update(_base_name(node))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and \
                isinstance(node.value.func, ast.Attribute):
            names.update(_base_name(node.value.func.value))
    return sorted(names)


def _base_name(node: ast.AST) -> list[str]:
    """``d`` for ``d["a"].b[0]``; nothing when the chain starts elsewhere (a call)."""
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
    return [node.id] if isinstance(node, ast.Name) else []


def timeline_names(code: str) -> list[str]:
    """``changed_names`` as a timeline shows them: at most 20, none for code that the
    parser refuses (null bytes, nesting too deep): the names are a courtesy."""
    try:
        return changed_names(code)[:20]
    except (ValueError, RecursionError, MemoryError):
        return []
