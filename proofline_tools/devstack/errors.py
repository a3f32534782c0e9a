"""The one error the supervisor reports as a plain message instead of a traceback."""


class StartupError(RuntimeError):
    """Something the stack needs could not be started; the message says what and why."""
