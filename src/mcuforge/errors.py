"""The user-facing errors of mcuforge.

Every failure a user can cause raises a subclass of `Error`. Each carries a one-paragraph message
that names what went wrong (node, op, source location where known) and a hint on what to do, and
an `exit_code` that the CLI returns (0 ok, 1 internal, 2 usage, 3 unsupported model, 4 does not
fit). This module imports nothing beyond the standard library so the IR can use it.
"""
from __future__ import annotations

from dataclasses import dataclass


class Error(Exception):
    """Base of every error mcuforge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))


class UsageError(Error):
    """Bad arguments: a missing file, an unknown pass name, a wrong option."""

    exit_code = 2


class ModelLoadError(Error):
    """A file that is not a model, or a truncated / malformed one."""

    exit_code = 3


class ResourceLimitError(ModelLoadError):
    """A tensor larger than any microcontroller could hold (`ir.types.MAX_TENSOR_BYTES`), refused
    before it is allocated: a hostile or corrupt size must not exhaust the host's memory."""


class ParseError(Error):
    """The textual IR could not be parsed; names the line and column."""

    exit_code = 2


class VerifyError(Error):
    """The IR broke a structural or per-op rule."""

    def __init__(self, node: str | None, reason: str, hint: str | None = None):
        self.node = node
        self.reason = reason
        where = f"node {node}: " if node else ""
        super().__init__(f"IR verification failed: {where}{reason}", hint)


class ShapeError(VerifyError):
    """Input shapes that an op cannot accept."""


@dataclass
class UnsupportedItem:
    """One op that a frontend could not map: what it is, where it comes from."""

    op: str
    node: str
    location: str | None = None

    def __str__(self) -> str:
        loc = f"\n      at {self.location}" if self.location else ""
        return f"  - {self.op} (node {self.node}){loc}"


class UnsupportedOpError(Error):
    """The model uses ops we cannot compile, or cannot be traced at all. Lists every one at once."""

    exit_code = 3

    def __init__(self, items: list[UnsupportedItem], hint: str | None = None, title: str | None = None):
        self.items = list(items)
        head = title or f"the model uses {len(self.items)} unsupported op(s):"
        body = "\n".join(str(i) for i in self.items)
        super().__init__(f"{head}\n{body}" if body else head,
                         hint or "rewrite these parts of the model with supported ops "
                                 "(`mcuforge ops` lists them), or open an issue with the op name")


class PassError(Error):
    """A pass failed or left invalid IR; names the pass, the passes before it and the node."""

    def __init__(self, pass_name: str, previous: list[str], cause: BaseException, node: str | None = None):
        self.pass_name = pass_name
        self.previous = list(previous)
        self.cause = cause
        self.node = node
        before = ", ".join(previous) if previous else "none"
        where = f" at node {node}" if node else ""
        super().__init__(f"pass '{pass_name}' failed{where}: {cause}\n  passes run before it: {before}",
                         "rerun with debug=True (CLI: --debug) to verify the IR after every pass")


class DoesNotFitError(Error):
    """The compiled model needs more SRAM or flash than the target has."""

    exit_code = 4
