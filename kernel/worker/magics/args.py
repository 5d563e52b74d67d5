"""Option parsing for magics: getopt-style, errors become ArgumentError (usage appended)."""

from __future__ import annotations

import getopt
import re
import shlex

from ipytui.kernel.worker.magics.registry import ArgumentError

Options = dict[str, str | bool]

_OPTION = re.compile(r"\s*(-[A-Za-z]\S*)")


def split(line: str) -> list[str]:
    """Shell-like words of a magic line (quotes respected)."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None


def parse_args(line: str, spec: str, longopts: tuple[str, ...] = (), *, anywhere: bool = True
               ) -> tuple[Options, list[str]]:
    """``getopt`` over the line's words; ``anywhere=False`` stops at the first argument."""
    parse = getopt.gnu_getopt if anywhere else getopt.getopt
    try:
        pairs, rest = parse(split(line), spec, list(longopts))
    except getopt.GetoptError as exc:
        raise ArgumentError(str(exc)) from None
    return {name.lstrip("-"): value or True for name, value in pairs}, rest


def parse_code_options(line: str, spec: str) -> tuple[Options, str]:
    """Leading ``-x`` options of a line whose remainder is Python code, kept verbatim."""
    options: Options = {}
    rest = line
    while m := _OPTION.match(rest):
        word, rest = m.group(1), rest[m.end():]
        flags = word[1:]
        while flags:
            flag, flags = flags[0], flags[1:]
            at = spec.find(flag)
            if at < 0 or flag == ":":
                raise ArgumentError(f"option -{flag} not recognized")
            if spec[at + 1 : at + 2] != ":":
                options[flag] = True
                continue
            if not flags:
                value = re.match(r"\s*(\S+)", rest)
                if value is None:
                    raise ArgumentError(f"option -{flag} requires an argument")
                flags, rest = value.group(1), rest[value.end():]
            options[flag], flags = flags, ""
    return options, rest.strip()


def int_option(options: Options, name: str, default: int, minimum: int = 1) -> int:
    """An integer option value, checked."""
    value = options.get(name)
    if value is None or value is True:
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise ArgumentError(f"option -{name} needs an integer, not {value!r}") from None
    if number < minimum:
        raise ArgumentError(f"option -{name} must be at least {minimum}")
    return number
