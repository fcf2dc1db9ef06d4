"""Domain errors. They carry a stable code and the offending field; no HTTP status lives here."""
from __future__ import annotations


class BanditPushError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class ConfigError(BanditPushError):
    """A setting the service cannot run with."""

    code = "invalid_setting"


class InvalidArgument(BanditPushError):
    """A caller sent a value that is malformed, out of range or of the wrong type."""

    code = "invalid_argument"


class NotFound(BanditPushError):
    """What the caller named does not exist (or has expired)."""

    code = "not_found"


class InvalidBatch(InvalidArgument):
    """Entries of a batch are invalid; nothing of it was stored. ``errors`` names each bad entry (up to a bound),
    ``invalid`` counts them all; the code and field are the first one's."""

    def __init__(self, errors: list[InvalidArgument], invalid: int, total: int):
        first = errors[0]
        more = f" (and {invalid - 1} more: see errors)" if invalid > 1 else ""
        super().__init__(f"{invalid} of {total} entries are invalid, so none was stored: {first.message}{more}",
                         field=first.field, code=first.code)
        self.errors = errors
        self.invalid = invalid


class NoData(NotFound):
    """Nothing to work on yet (a refit before any interactions or history): an expected state, not a failure."""

    code = "no_data"


class Conflict(BanditPushError):
    """The request is well-formed but contradicts the stored state."""

    code = "conflict"


class Unavailable(BanditPushError):
    """A dependency (Redis) cannot be reached; the caller should retry later."""

    code = "unavailable"


class Unauthenticated(BanditPushError):
    """No credentials, or credentials that match no configured key."""

    code = "unauthenticated"


class Forbidden(BanditPushError):
    """Valid credentials without the right to do this."""

    code = "forbidden"


class RateLimited(BanditPushError):
    """The caller's key has spent its request budget; ``retry_after`` seconds until it may try again."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float, field: str | None = None, code: str | None = None):
        super().__init__(message, field=field, code=code)
        self.retry_after = retry_after


class InvalidLog(InvalidArgument):
    """A decision-log file that does not follow its schema; the message names the line."""

    code = "invalid_log"
