"""User-facing errors: the CLI prints these as one line, never a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a path, a flag, a config value, a file's content).

    The CLI catches it and prints ``error: <message>`` on one line, exit status 2.
    Raise it with a message that names the offending thing and says what was expected.
    """
