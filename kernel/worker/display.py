"""Rich display: mime bundles from objects, and the display()/clear_output() builtins."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipytui.kernel.worker.publisher import Publisher

# (method, mimetype) in the order IPython users expect them to be tried.
_REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
    ("_repr_pdf_", "application/pdf"),
)
_BINARY = {"image/png", "image/jpeg", "application/pdf"}

Formatter = Callable[[Any], "tuple[dict[str, Any], dict[str, Any]]"]
# Bundles for types that have no _repr_*_ of their own (matplotlib's Figure), by class.
FORMATTERS: dict[type, Formatter] = {}


def register_formatter(cls: type, formatter: Formatter) -> None:
    """Format instances of ``cls`` (and subclasses) with ``formatter`` -> (data, metadata)."""
    FORMATTERS[cls] = formatter


def _registered(obj: Any) -> Formatter | None:
    if not FORMATTERS:
        return None
    for klass in type(obj).__mro__:
        formatter = FORMATTERS.get(klass)
        if formatter is not None:
            return formatter
    return None


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not kill output
        return f"<repr of {type(obj).__name__} failed: {type(exc).__name__}: {exc}>"


def _encode(mime: str, value: Any) -> Any:
    if mime in _BINARY and isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode("ascii")
    if mime == "application/json" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def format_object(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mime bundle and metadata for obj; text/plain is always present."""
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    formatter = _registered(obj)
    if formatter is not None:
        try:
            data, metadata = formatter(obj)
        except Exception as exc:  # noqa: BLE001 - a failed render still shows the repr
            data = {"text/plain": f"{_safe_repr(obj)} (could not be rendered: {exc})"}
        data = {k: _encode(k, v) for k, v in data.items()}
    bundle_method = getattr(type(obj), "_repr_mimebundle_", None)
    if bundle_method is not None:
        try:
            result = obj._repr_mimebundle_(include=None, exclude=None)
        except TypeError:
            result = obj._repr_mimebundle_()
        except Exception:  # noqa: BLE001
            result = None
        if isinstance(result, tuple) and len(result) == 2:
            result, md = result
            metadata.update(md or {})
        if isinstance(result, dict):
            data.update({k: _encode(k, v) for k, v in result.items()})
    for method, mime in _REPR_METHODS:
        if mime in data or getattr(type(obj), method, None) is None:
            continue
        try:
            value = getattr(obj, method)()
        except Exception:  # noqa: BLE001
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, md = value
            metadata[mime] = md
        if value is not None:
            data[mime] = _encode(mime, value)
    if "text/plain" not in data:
        data["text/plain"] = _safe_repr(obj)
    return data, metadata


class Display:
    """display(), update_display() and clear_output(), publishing on IOPub."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.before_output = lambda: None  # flush streams so order is kept

    def display(self, *objs: Any, raw: bool = False, metadata: dict[str, Any] | None = None,
                display_id: str | bool | None = None, update: bool = False,
                include: Any = None, exclude: Any = None, **kwargs: Any) -> DisplayHandle | None:
        """Show objects as display_data (raw=True: objs are mime bundles)."""
        if display_id is True:
            display_id = uuid.uuid4().hex
        for obj in objs:
            if not raw and getattr(type(obj), "_ipython_display_", None) is not None:
                obj._ipython_display_()  # the object shows itself (IPython's protocol)
                continue
            if raw:
                data, md = dict(obj), dict(metadata or {})
            else:
                data, md = format_object(obj)
                md.update(metadata or {})
            self.publish(data, md, display_id=display_id or None, update=update)
        if display_id:
            return DisplayHandle(self, str(display_id))
        return None

    def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
                display_id: str | None = None, update: bool = False) -> None:
        self.before_output()
        content: dict[str, Any] = {"data": data, "metadata": metadata or {}, "transient": {}}
        if display_id:
            content["transient"] = {"display_id": display_id}
        self._publisher.send("iopub", "update_display_data" if update else "display_data", content)

    def clear_output(self, wait: bool = False) -> None:
        """Ask frontends to clear this cell's output (wait: at the next output)."""
        self.before_output()
        self._publisher.send("iopub", "clear_output", {"wait": bool(wait)})


class DisplayHandle:
    """What display(..., display_id=True) returns: update or re-display by id."""

    def __init__(self, owner: Display, display_id: str) -> None:
        self._owner = owner
        self.display_id = display_id

    def __repr__(self) -> str:
        return f"<DisplayHandle display_id={self.display_id}>"

    def update(self, obj: Any, **kwargs: Any) -> None:
        self._owner.display(obj, display_id=self.display_id, update=True, **kwargs)

    def display(self, obj: Any, **kwargs: Any) -> None:
        self._owner.display(obj, display_id=self.display_id, **kwargs)
