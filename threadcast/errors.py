"""The one exception tree of threadcast.

Third-party errors (redis, httpx, msal, SQLAlchemy) are translated into these at the
boundary with ``raise ... from``; each carries what an operator needs to act (the
variable, field, tenant, delivery id, Graph error code or request id) and never a secret.

    ThreadcastError
    ├── ConfigError            a setting is missing or invalid (names the THREADCAST_ variable)
    ├── ValidationError        bad input from a caller (names the field and the value)
    │   └── AudienceError      an audience that cannot be resolved as given (names it)
    ├── NotFoundError          an id that does not exist (broadcast, delivery, tenant)
    ├── LedgerError            the SQL ledger failed or is newer than this code
    ├── BrokerError            Redis or the Celery transport is unreachable
    ├── TokenCacheError        a tenant's cache cannot be read: wrong key, corrupt, foreign
    ├── SignInRequiredError    a tenant has no usable sign-in; run `threadcast login`
    ├── IdentityError          the identity platform refused a sign-in or could not be reached
    └── GraphUnavailableError  Graph could not answer an audience's reads just now

Graph's answers to posts are not exceptions: the worker records each as an attempt's outcome.
"""

from __future__ import annotations


class ThreadcastError(Exception):
    """Base of every error threadcast raises on purpose."""


class ConfigError(ThreadcastError):
    """A setting is missing or invalid; the message names the environment variable."""


class ValidationError(ThreadcastError):
    """Caller input is invalid; ``field`` and ``value`` say which and what."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {reason} (got {shown})")
        self.field = field
        self.value = value
        self.reason = reason


class NotFoundError(ThreadcastError):
    """An id that names nothing in the ledger."""


class LedgerError(ThreadcastError):
    """The ledger database failed, or its schema is newer than this code."""


class BrokerError(ThreadcastError):
    """Redis (the broker and shared state) cannot be reached."""


class TokenCacheError(ThreadcastError):
    """A tenant's stored token cache cannot be used as it is."""

    def __init__(self, tenant: str, problem: str) -> None:
        super().__init__(f"token cache of tenant {tenant}: {problem}")
        self.tenant = tenant


class SignInRequiredError(ThreadcastError):
    """The tenant's delegated sign-in is missing or no longer usable."""

    def __init__(self, tenant: str, reason: str) -> None:
        super().__init__(
            f"tenant {tenant} needs a sign-in ({reason}); run: threadcast login --tenant {tenant}"
        )
        self.tenant = tenant
        self.reason = reason


class IdentityError(ThreadcastError):
    """A sign-in failed: the identity platform said no (its error code) or was unreachable."""


class AudienceError(ValidationError):
    """An audience cannot be resolved as given: a bad spec, an unknown saved audience or team,
    or a sign-in without the permissions its Graph reads need. ``field`` names the audience."""


class GraphUnavailableError(ThreadcastError):
    """Graph could not answer an audience's reads just now (unreachable, failing, or still
    throttling after the waits it asked for): nothing was stored, try again later."""
