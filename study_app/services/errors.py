"""The errors services raise: each carries one line a coordinator or reader can act on."""


class ServiceError(Exception):
    """Base of every expected failure; the CLI prints its message and exits non-zero, the web app shows it."""

    exit_code = 1


class NotFound(ServiceError):
    exit_code = 2


class PermissionDenied(ServiceError):
    exit_code = 3


class Conflict(ServiceError):
    """The action clashes with the study's current state (already submitted, study launched, ...)."""

    exit_code = 4


class InvalidInput(ServiceError):
    """Bad input from a file or a form; nothing was changed."""

    exit_code = 5


class AlreadySubmitted(Conflict):
    """A second submit of the same case (double click, second tab): the first one stands."""


class Unavailable(ServiceError):
    """Something the action needs is not there: a model server down, a model not served, a package missing."""

    exit_code = 6


class DatabaseUnavailable(Unavailable):
    """The study database cannot do the work right now: busy beyond the wait, disk full, read-only, damaged,
    missing or unreachable. Raised once, by ``study_app.services.database``, for every caller; the message
    says in plain words what happened and that nothing was saved, so a page or the CLI shows it as it is.
    """

    exit_code = 7

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        # One of database.FAULT_REASONS: lets a route pick its status and a page its wording.
        self.reason = reason
