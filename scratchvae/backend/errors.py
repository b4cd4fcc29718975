"""Errors raised when a backend cannot be used."""


class BackendError(RuntimeError):
    """A backend was asked for that this machine cannot provide; the message says what to use instead."""
