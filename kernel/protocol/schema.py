"""The Jupyter message schema: what a decoded request must look like before use.

Pure functions over the decoded dicts; each returns why a message is unusable,
or None. The supervisor checks every message it receives here, once, where
bytes become a ``Message``; past that point handlers may rely on the types
(a ``msg_id`` is a hashable string, a ``comm_id`` a string, ``code`` a str).

The field tables follow the Jupyter messaging spec (5.x). Fields a client may
leave out are optional; a field that is present must have the spec's type.
JSON's ``true``/``false`` are not integers here, and integers are not booleans.
Unknown extra fields are allowed, as the spec asks of kernels.
"""

from __future__ import annotations

from typing import Any

NoneType = type(None)

#: header fields every message must carry, and their type
HEADER_REQUIRED = ("msg_id", "msg_type", "session")
#: header fields that older clients may omit, but that must be strings if sent
HEADER_OPTIONAL = ("username", "date", "version")
#: longest header string accepted: ids are uuids and names short, and every
#: reply, log line and peer-table entry repeats them
HEADER_MAX_CHARS = 1024

# field -> (allowed types, required)
Fields = dict[str, tuple[tuple[type, ...], bool]]

_STR = (str,)
_INT = (int,)
_BOOL = (bool,)
_DICT = (dict,)
_OPT_INT = (int, NoneType)
_OPT_STR = (str, NoneType)

HISTORY_FIELDS: Fields = {
    "output": (_BOOL, False), "raw": (_BOOL, False), "hist_access_type": (_STR, False),
    "session": (_INT, False), "start": (_INT, False), "stop": (_OPT_INT, False),
    "n": (_OPT_INT, False), "pattern": (_STR, False), "unique": (_BOOL, False),
}

#: content fields per msg_type, for every message type the kernel accepts from clients
CONTENT: dict[str, Fields] = {
    "execute_request": {
        "code": (_STR, True), "silent": (_BOOL, False), "store_history": (_BOOL, False),
        "user_expressions": (_DICT, False), "allow_stdin": (_BOOL, False),
        "stop_on_error": (_BOOL, False),
    },
    "complete_request": {"code": (_STR, True), "cursor_pos": (_OPT_INT, False)},
    "inspect_request": {"code": (_STR, True), "cursor_pos": (_OPT_INT, False),
                        "detail_level": (_INT, False)},
    "is_complete_request": {"code": (_STR, True)},
    "history_request": HISTORY_FIELDS,
    "kernel_info_request": {},
    "connect_request": {},
    "comm_info_request": {"target_name": (_OPT_STR, False)},
    "comm_open": {"comm_id": (_STR, True), "target_name": (_STR, True), "data": (_DICT, False),
                  "target_module": (_OPT_STR, False)},
    "comm_msg": {"comm_id": (_STR, True), "data": (_DICT, False)},
    "comm_close": {"comm_id": (_STR, True), "data": (_DICT, False)},
    "interrupt_request": {},
    "shutdown_request": {"restart": (_BOOL, False)},
    "usage_request": {},
    "debug_request": {"seq": (_INT, False), "type": (_STR, False), "command": (_STR, False),
                      "arguments": (_DICT, False)},
    "input_reply": {"value": (_STR, True)},
    "ipytui_restore_request": {},
}

#: requests a kernel takes on the control channel only (never queued behind a cell)
CONTROL_ONLY = frozenset({"ipytui_restore_request", "debug_request", "usage_request"})


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object",
             list: "an array", NoneType: "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, for error texts."""
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (dict, "an object"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def is_type(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that booleans are not integers (nor integers booleans)."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


INT_RANGE = range(-(2**63), 2**63)  # what SQLite and C code downstream can take


def field_problem(where: str, name: str, value: Any, types: tuple[type, ...]) -> str | None:
    """Why one field has the wrong type (or an integer out of 64-bit range), or None."""
    if not is_type(value, types):
        return f"{where} {name!r} must be {_type_names(types)}, not {_json_kind(value)}"
    if type(value) is int and value not in INT_RANGE:
        return f"{where} {name!r} is out of the 64-bit integer range"
    return None


def header_problem(header: Any) -> str | None:
    """Why a header is unusable (not an object, a missing or non-string id), or None."""
    if not isinstance(header, dict):
        return f"header must be an object, not {_json_kind(header)}"
    for name in HEADER_REQUIRED:
        if name not in header:
            return f"header has no {name!r}"
    for name in (*HEADER_REQUIRED, *HEADER_OPTIONAL):
        if name in header:
            problem = field_problem("header", name, header[name], _STR)
            if problem:
                return problem
            if len(header[name]) > HEADER_MAX_CHARS:
                return f"header {name!r} is longer than {HEADER_MAX_CHARS} characters"
    if not header["msg_type"]:
        return "header 'msg_type' is empty"
    return None


def fields_problem(where: str, content: dict[str, Any], fields: Fields) -> str | None:
    """Why a dict does not match a field table (missing or mistyped field), or None."""
    for name, (types, required) in fields.items():
        if name not in content:
            if required:
                return f"{where} has no {name!r}"
            continue
        problem = field_problem(where, name, content[name], types)
        if problem:
            return problem
    return None


def content_problem(msg_type: str, content: dict[str, Any]) -> str | None:
    """Why a message's content does not fit its type, or None (unknown types pass:
    they are answered 'unknown message type' by whoever would handle them)."""
    fields = CONTENT.get(msg_type)
    if fields is None:
        return None
    where = f"{msg_type} content"
    problem = fields_problem(where, content, fields)
    if problem:
        return problem
    return _value_problem(msg_type, content)


def _value_problem(msg_type: str, content: dict[str, Any]) -> str | None:
    """Checks beyond types: allowed values and the inside of nested objects."""
    if msg_type == "execute_request":
        for name, expr in content.get("user_expressions", {}).items():
            if not isinstance(expr, str):
                return f"execute_request user_expressions[{_short(name)}] must be a string"
    elif msg_type == "history_request":
        access = content.get("hist_access_type", "tail")
        if access not in ("tail", "range", "search"):
            return f"unknown hist_access_type {_short(access)}"
    elif msg_type == "inspect_request" and content.get("detail_level", 0) not in (0, 1):
        return "inspect_request content 'detail_level' must be 0 or 1"
    return None


def _short(value: Any, limit: int = 60) -> str:
    """A repr for an error text, cut so a huge value cannot flood a reply or the log."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def channel_problem(channel: str, msg_type: str) -> str | None:
    """Why a message type may not come on this channel, or None."""
    if channel == "shell" and msg_type in CONTROL_ONLY:
        return f"{msg_type} is only accepted on the control channel"
    if channel == "stdin" and msg_type != "input_reply":
        return f"only input_reply is accepted on stdin, not {msg_type}"
    return None


def message_problem(channel: str, msg_type: str, content: dict[str, Any]) -> str | None:
    """Why a message (its header already checked) must be refused here, or None."""
    return channel_problem(channel, msg_type) or content_problem(msg_type, content)


def reply_type(msg_type: str) -> str:
    """The reply's type for a request type (``x_request`` -> ``x_reply``)."""
    return msg_type[: -len("_request")] + "_reply" if msg_type.endswith("_request") else msg_type + "_reply"
