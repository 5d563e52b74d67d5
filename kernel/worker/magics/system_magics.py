"""Magics about the process environment: directories, variables, pip, shell scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from ipytui.kernel.worker.magics import process
from ipytui.kernel.worker.magics.args import parse_args, parse_code_options, split
from ipytui.kernel.worker.magics.registry import ArgumentError, UsageError, cell_magic, line_magic

_SECRET_MARKERS = ("key", "token", "secret", "password", "passwd")


@line_magic
def pwd(shell: Any, line: str) -> str:
    """%pwd

    Return the current working directory.
    """
    return os.getcwd()


@line_magic
def cd(shell: Any, line: str) -> None:
    """%cd [-q] [DIR | -]

    Change the working directory and print it: no DIR goes home, `-` goes back
    to the previous one. -q: do not print.
    """
    options, rest = parse_code_options(line, "q")
    words = split(rest) if rest[:1] in ("'", '"') else ([rest] if rest else [])
    if len(words) > 1:
        raise ArgumentError("one directory at most")
    target = words[0] if words else "~"
    if target == "-":
        if shell.previous_dir is None:
            raise UsageError("cd -: no previous directory")
        target = shell.previous_dir
    here = os.getcwd()
    try:
        os.chdir(os.path.expanduser(target))
    except OSError as exc:
        raise UsageError(f"cd: {exc.strerror}: {target}") from None
    shell.previous_dir = here
    if not options.get("q"):
        print(os.getcwd())


def _hidden_value(name: str, value: str) -> str:
    return "<hidden>" if any(m in name.lower() for m in _SECRET_MARKERS) else value


@line_magic
def env(shell: Any, line: str) -> Any:
    """%env [NAME | NAME=VALUE | NAME VALUE]

    No argument: return the environment (values of secret-looking names hidden).
    NAME: return its value. NAME=VALUE or NAME VALUE: set it.
    """
    line = line.strip()
    if not line:
        return {name: _hidden_value(name, value) for name, value in os.environ.items()}
    if "=" in line:
        name, value = (part.strip() for part in line.split("=", 1))
    else:
        name, _, value = line.partition(" ")
        if not value.strip():
            if name not in os.environ:
                raise UsageError(f"Environment does not have key: {name}")
            return os.environ[name]
        value = value.strip()
    if not name or any(c.isspace() for c in name):
        raise ArgumentError(f"bad variable name {name!r}")
    os.environ[name] = value
    print(f"env: {name}={value}")
    return None


@line_magic
def pip(shell: Any, line: str) -> None:
    """%pip ARGS

    Run pip with the kernel's own Python (`sys.executable -m pip ARGS`),
    output streamed as it comes.
    """
    args = split(line)
    if not args:
        raise ArgumentError("pip needs a command, e.g. `%pip install NAME`")
    shell.user_ns["_exit_code"] = process.run_streaming([sys.executable, "-m", "pip", *args])
    if args[0] in ("install", "uninstall"):
        print("Note: you may need to restart the kernel to use updated packages.")


def _script(shell: Any, program: str, line: str, cell: str) -> None:
    options, args = parse_args(line, "", ("no-raise-error",), anywhere=False)
    code = process.run_streaming([program, "-c", cell, program, *args])
    shell.user_ns["_exit_code"] = code
    if code and "no-raise-error" not in options:
        raise subprocess.CalledProcessError(code, program)


@cell_magic
def bash(shell: Any, line: str, cell: str) -> None:
    """%%bash [--no-raise-error] [ARGS ...]

    Run the cell with bash, output streamed live; ARGS become $1, $2, ...
    A non-zero exit raises CalledProcessError unless --no-raise-error.
    """
    _script(shell, "bash", line, cell)


@cell_magic
def sh(shell: Any, line: str, cell: str) -> None:
    """%%sh [--no-raise-error] [ARGS ...]

    Run the cell with sh, output streamed live; ARGS become $1, $2, ...
    A non-zero exit raises CalledProcessError unless --no-raise-error.
    """
    _script(shell, "sh", line, cell)
