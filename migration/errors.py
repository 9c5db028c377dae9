"""The one exception type for user-facing errors.

Anything the user can fix (a bad flag, a missing table, a refused connection, a lab that
cannot start) is raised as :class:`FuretError` with one clear line. The CLI prints that
line and exits with :data:`EXIT_USER_ERROR`; it never prints a traceback or a password.
"""

EXIT_OK = 0
EXIT_USER_ERROR = 2


class FuretError(Exception):
    """An error the user can act on; its message is printed as is."""
