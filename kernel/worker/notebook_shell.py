"""``get_ipython()`` in the worker: a small shell object of ours, no IPython needed.

Libraries probe for a notebook kernel through ``get_ipython()`` (tqdm.auto,
rich, plotly, ipywidgets, matplotlib backends) and use a handful of its
members: ``kernel`` (its comm manager and current parent), ``config``,
``events``, ``user_ns``, ``run_line_magic``, ``showtraceback``. This object
provides exactly those; README ("get_ipython() in the kernel") lists what it
does not (no ``display_pub``, ``display_formatter``, ``magics_manager``, no
traitlets). ``ipython_compat`` makes ``IPython.get_ipython()`` return it too.
"""

from __future__ import annotations

import builtins
import sys
from typing import TYPE_CHECKING, Any

from ipytui.kernel.worker.events import CellInfo, CellResult, EventManager
from ipytui.kernel.worker.execution import format_exception

if TYPE_CHECKING:
    from ipytui.kernel.worker.context import WorkerContext

_SHELL: ZMQInteractiveShell | None = None


def get_ipython() -> ZMQInteractiveShell | None:
    """The worker's shell (None outside a worker), as IPython's function of that name."""
    return _SHELL


class ConfigSection(dict):  # type: ignore[type-arg]
    """A dict whose missing keys are sections, readable as attributes (traitlets' Config use)."""

    def __missing__(self, key: str) -> ConfigSection:
        section = self[key] = ConfigSection()
        return section

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def default_config() -> ConfigSection:
    """What a notebook kernel's config holds as far as libraries look (``'IPKernelApp' in``)."""
    config = ConfigSection()
    config["IPKernelApp"] = ConfigSection(kernel_class="ipytui")
    config["InlineBackend"] = ConfigSection(figure_formats=["png"], close_figures=True)
    return config


class KernelFacade:
    """``get_ipython().kernel``: the comm manager and the request being served."""

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker

    @property
    def comm_manager(self) -> Any:
        import comm

        return comm.get_comm_manager()

    def get_parent(self, channel: str = "shell") -> dict[str, Any]:
        """The current parent request as a jupyter_client message dict ({} when idle)."""
        parent = self._worker.publisher.parent
        return parent.as_dict() if parent is not None else {}

    @property
    def _parent_header(self) -> dict[str, Any]:
        return self.get_parent()

    @property
    def execution_count(self) -> int:
        return self._worker.execution_count


class ZMQInteractiveShell:
    """The object ``get_ipython()`` returns in an ipytui kernel.

    Named like ipykernel's shell class because that class name is the probe
    libraries use to detect a notebook kernel (rich, many ``is_notebook()``s).
    """

    def __init__(self, worker: WorkerContext) -> None:
        self._worker = worker
        self.kernel = KernelFacade(worker)
        self.config = default_config()
        self.events = EventManager(on_error=self.showtraceback)

    def __repr__(self) -> str:
        return "<ipytui kernel shell (get_ipython())>"

    # -- namespaces -----------------------------------------------------------
    @property
    def user_ns(self) -> dict[str, Any]:
        return self._worker.namespace

    @property
    def user_global_ns(self) -> dict[str, Any]:
        return self._worker.namespace

    @property
    def execution_count(self) -> int:
        return self._worker.execution_count

    @property
    def magics_manager(self) -> MagicsView:
        """Which magics exist, as IPython's manager tells libraries (ipyparallel checks
        for ``px`` before it registers its own)."""
        return MagicsView()

    def has_trait(self, name: str) -> bool:
        """traitlets' probe: whether this shell has ``name`` (libraries call it before use)."""
        return not name.startswith("_") and hasattr(self, name)

    def push(self, variables: dict[str, Any]) -> None:
        """Put names into the user namespace."""
        if not isinstance(variables, dict):
            raise TypeError("push() takes a dict of names to values")
        self.user_ns.update(variables)

    def ev(self, expr: str) -> Any:
        """Evaluate an expression in the user namespace."""
        return eval(expr, self.user_ns)  # noqa: S307 - the user's own kernel

    def ex(self, cmd: str) -> None:
        """Execute a statement in the user namespace."""
        exec(cmd, self.user_ns)  # noqa: S102

    # -- magics ---------------------------------------------------------------
    def run_line_magic(self, magic_name: str, line: str, _stack_depth: int = 1) -> Any:
        """Run ``%magic_name line`` (our magics: see ``%lsmagic``)."""
        return builtins.__ipytui__.line_magic(magic_name, line)  # type: ignore[attr-defined]

    def run_cell_magic(self, magic_name: str, line: str, cell: str) -> Any:
        """Run ``%%magic_name line`` over ``cell``."""
        return builtins.__ipytui__.cell_magic(magic_name, line, cell)  # type: ignore[attr-defined]

    # -- output ---------------------------------------------------------------
    def get_parent(self) -> dict[str, Any]:
        return self.kernel.get_parent()

    def set_parent(self, parent: dict[str, Any]) -> None:
        """Accepted and ignored: the worker has one current parent, set per request."""

    def showtraceback(self, exc_tuple: Any = None, filename: Any = None, tb_offset: Any = None,
                      exception_only: bool = False, running_compiled_code: bool = False) -> None:
        """Show the exception being handled (or ``exc_tuple``) as an ``error`` output."""
        exc = exc_tuple[1] if exc_tuple else sys.exc_info()[1]
        if exc is None:
            return
        worker = self._worker
        worker.flush_streams()
        worker.publisher.send("iopub", "error", {"ename": type(exc).__name__, "evalue": str(exc),
                                                 "traceback": format_exception(exc)})

    # -- the worker's calls around each cell -------------------------------------
    def before_cell(self, raw_cell: str, silent: bool, store_history: bool) -> CellInfo:
        """``pre_execute`` always, ``pre_run_cell`` for a cell that is not silent."""
        info = CellInfo(raw_cell, silent, store_history)
        self.events.trigger("pre_execute")
        if not silent:
            self.events.trigger("pre_run_cell", info)
        return info

    def after_cell(self, info: CellInfo, execution_count: int, outcome: Any) -> None:
        """``post_execute`` (matplotlib shows open figures here), then ``post_run_cell``."""
        self.events.trigger("post_execute")
        if not info.silent:
            error = None if outcome.status == "ok" else RuntimeError(
                f"{outcome.ename}: {outcome.evalue}")
            self.events.trigger("post_run_cell", CellResult(info, execution_count, error))


def install(worker: WorkerContext) -> ZMQInteractiveShell:
    """Make the shell current and ``get_ipython`` a builtin of the user namespace."""
    global _SHELL  # noqa: PLW0603 - one shell per worker process
    _SHELL = ZMQInteractiveShell(worker)
    builtins.get_ipython = get_ipython  # type: ignore[attr-defined]
    return _SHELL


class MagicsView:
    """IPython's ``magics_manager`` as far as libraries look at it: the magics there are."""

    @property
    def magics(self) -> dict[str, dict[str, Any]]:
        # The registry itself, not the package (whose notebook magics import this module);
        # importing it runs the package's __init__ first, so every magic is registered.
        from ipytui.kernel.worker.magics.registry import all_magics

        return {kind: {name: magic.fn for name, magic in found.items()}
                for kind, found in all_magics().items()}

    def register(self, *magic_objects: Any) -> None:
        """IPython ``Magics`` classes need IPython's shell; ours are plain functions."""
        raise NotImplementedError(
            "ipytui's kernel has its own magics (see %lsmagic); IPython Magics classes "
            "cannot be registered here: use ipytui.kernel.worker.magics.line_magic")
