"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(ValueError):
    """A problem with the user's input (a file, an option); the message names it."""


class DataError(UserError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
