"""The one exception type the data layer raises for bad or missing input."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset, file or argument is missing or malformed, and the user can fix it.

    The message names the problem and the fix on a single line, so the command-line
    interface can print it as is, without a traceback. Any line breaks in the message
    are collapsed to spaces to keep that promise.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
