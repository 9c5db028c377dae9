"""The one exception type for user-facing errors, furet's exit codes, and the context an
unexpected error is reported with.

Anything the user can fix (a bad flag, a missing table, a refused connection, a lab that
cannot start) is raised as :class:`FuretError` with one clear line. The CLI prints that
line and exits with :data:`EXIT_USER_ERROR`; it never prints a traceback or a password.
Anything else (a bug, a driver error nobody turned into a FuretError) is one line too, with
the same code; its traceback goes to a log file the line names (:mod:`migration.failure`).

Exit codes, the same for ``furet`` and ``fab``:

- 0 :data:`EXIT_OK`: done (verify: source and target agree);
- 1 :data:`EXIT_DIFFERENCES`: only ``verify``: source and target differ;
- 2 :data:`EXIT_USER_ERROR`: any error (a user error, an unreachable host, an unexpected
  exception), never 1, so that a script or the verify gate cannot read it as differences;
- 130 :data:`EXIT_INTERRUPTED`: Ctrl-C (128 + SIGINT, as shells do).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_DIFFERENCES = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

CONTEXT_KEYS = ("host", "database", "table", "step")


class FuretError(Exception):
    """An error the user can act on; its message is printed as is."""


def add_context(exc: BaseException, **what: object) -> None:
    """Name where ``exc`` happened (``host``, ``database``, ``table``, ``step``); the
    innermost name wins (set first, as the exception rises). Kept on the exception, so it
    survives a worker thread (``future.result()`` re-raises the same object)."""
    known: dict[str, str] = getattr(exc, "__furet_context__", {})
    added = {k: str(v) for k, v in what.items() if v not in (None, "") and k not in known}
    if not added:
        return
    try:
        exc.__furet_context__ = {**known, **added}  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__: nothing to do
        return
    exc.add_note("furet context: " + ", ".join(f"{k} {v}" for k, v in added.items()))


@contextmanager
def context(**what: object) -> Iterator[None]:
    """``with context(host=..., database=..., table=...):`` names the work for the one line
    an unexpected exception becomes (a FuretError already says what it needs)."""
    try:
        yield
    except FuretError:
        raise
    except BaseException as exc:
        add_context(exc, **what)
        raise
