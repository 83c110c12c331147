"""Errors the CLI shows to the user as one clear message (no traceback)."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""
