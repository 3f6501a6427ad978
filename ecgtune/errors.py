"""The one exception type the CLI turns into a clear message and exit code 2."""


class EcgtuneError(Exception):
    """Bad input or missing data: the message says what, where, and what was expected."""

    exit_code = 2
