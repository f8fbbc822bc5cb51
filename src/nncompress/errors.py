"""Errors typed by whose fault they are.

``UserError`` and its subclasses mean bad input: the CLI prints the message
as one line and exits 2. Anything else that escapes is our bug: exit 1 with
"internal error (run with --debug for the traceback)".
"""


class UserError(Exception):
    """Bad input; the message says what is wrong and how to fix it."""


class SpecError(UserError):
    """A bad layer spec or setting; the message names the offending item."""


class ImageError(UserError):
    """An image that cannot be used; the message says why and what to do."""


class ModelFileError(UserError):
    """A model file that cannot be used; the message says why."""
