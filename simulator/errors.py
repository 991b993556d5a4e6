"""The simulator's exceptions, and the wire format each protocol error is rendered in.

    SimulatorError                 base of everything the simulator raises on purpose
    ├── StartupError               the simulator could not start (TLS material, socket, timeout)
    ├── IdentityError              an identity platform error answer (AADSTS body)
    ├── GraphError                 a Microsoft Graph error answer (Graph error body)
    └── ConnectionDropError        no answer at all: the connection is to be cut (a fault)

Protocol errors are exceptions so that deep validation code can stop a request with the exact
answer Microsoft would give; the HTTP layer renders them with :meth:`body`.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator.clock import aad_timestamp, graph_date

AAD_ERROR_URI = "https://login.microsoftonline.com/error?code={code}"


class SimulatorError(Exception):
    """Base class of the simulator's exceptions."""


class StartupError(SimulatorError):
    """The simulator could not start; the message says why and what to do."""


class IdentityError(SimulatorError):
    """An OAuth error answer in the Microsoft identity platform format."""

    def __init__(self, error: str, aadsts: int, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: AADSTS{aadsts}: {description}")
        self.error = error
        self.aadsts = aadsts
        self.description = description
        self.status = status

    def body(self, trace_id: str, correlation_id: str, now: float) -> dict[str, object]:
        timestamp = aad_timestamp(now)
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": AAD_ERROR_URI.format(code=self.aadsts),
        }


class ConnectionDropError(SimulatorError):
    """A fault policy decided that this request gets no answer: its connection is cut."""


class GraphError(SimulatorError):
    """An error answer in the Microsoft Graph format (``{"error": {"code", "message", ...}}``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # Throttling and fault policies attach Retry-After and similar headers here.
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, request_id: str, client_request_id: str, now: float) -> dict[str, object]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": graph_date(now),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
