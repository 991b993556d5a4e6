"""Every error the API answers, as one JSON shape: ``{"error": {status, message, fields}}``.

threadcast's own errors map to their status here (ValidationError 422 naming the field,
NotFoundError 404, a ledger or Redis outage 503). A 5xx says what an operator or a retrying
client needs and nothing else: no SQL, no stack, no secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from producer.api.models import ErrorBody, ErrorDetail, FieldError
from threadcast.errors import (
    BrokerError,
    GraphUnavailableError,
    LedgerError,
    NotFoundError,
    ValidationError,
)

log = logging.getLogger("threadcast.api")

NOT_JSON = "must be a JSON object sent with Content-Type: application/json"
#: Field errors a 422 lists at most: a 1 MiB body of empty targets has ~150,000 of them, and
#: the answer must not be megabytes. The message counts the ones left out.
MAX_FIELD_ERRORS = 20
#: FastAPI's answer when the JSON parser itself fails (not a syntax error: those are 422).
_UNPARSED = "There was an error parsing the body"
UNAVAILABLE = "the ledger or Redis is unavailable; nothing was changed, try again later"
_OUTAGES: tuple[type[Exception], ...] = (LedgerError, SQLAlchemyError, redis.RedisError)


class TooLarge(HTTPException):
    """413: a body over THREADCAST_API_MAX_BODY_BYTES or more targets than allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


def error_response(
    status: int,
    message: str,
    fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(status=status, message=message, fields=list(fields)))
    return JSONResponse(body.model_dump(), status_code=status, headers=dict(headers or {}))


def field_name(loc: Sequence[int | str]) -> str:
    """pydantic's ``("body", "targets", 0, "tenant")`` as ``targets[0].tenant``."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _described(error: dict[str, Any]) -> FieldError:
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return FieldError(field="body", message=f"is not valid JSON: {detail}".rstrip(": "))
    loc = tuple(error.get("loc", ()))
    if loc == ("body",) and isinstance(error.get("input"), bytes):
        # FastAPI parses JSON only when the request says it is JSON.
        return FieldError(field="body", message=NOT_JSON)
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return FieldError(field=field_name(loc), message=message)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    fields = [_described(e) for e in errors[:MAX_FIELD_ERRORS]]
    summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    rest = len(errors) - len(fields)
    more = f" ({rest} more not listed)" if rest else ""
    return error_response(422, f"invalid request: {summary}{more}", fields)


def _unparsed(cause: BaseException | None) -> FieldError:
    """Why the JSON parser gave up on a body it could not even scan for a syntax error."""
    if isinstance(cause, RecursionError):
        reason = "is not valid JSON: nested too deeply"
    elif isinstance(cause, UnicodeDecodeError):
        reason = "is not valid JSON: not UTF-8 text"
    else:
        reason = "is not valid JSON"
    return FieldError(field="body", message=reason)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return error_response(422, str(exc), [FieldError(field=exc.field, message=exc.reason)])


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, str(exc))


async def _broker(_request: Request, exc: Exception) -> JSONResponse:
    log.error("Redis unavailable: %s", exc)
    return error_response(503, str(exc), headers={"Retry-After": "5"})


async def _graph_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, str(exc), headers={"Retry-After": "5"})


async def _outage(_request: Request, exc: Exception) -> JSONResponse:
    # SQLAlchemy's text carries SQL and parameters: the log gets the type, the caller nothing.
    log.error("store unavailable: %s", type(exc).__name__)
    return error_response(503, UNAVAILABLE, headers={"Retry-After": "5"})


# Starlette's own 404/405 details; ours say what they mean.
_PLAIN = {"Not Found": "no such route", "Method Not Allowed": "method not allowed on this route"}


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == _UNPARSED:
        # Bad input like any other (30,000 nested brackets, bytes that are not UTF-8): 422.
        field = _unparsed(exc.__cause__)
        return error_response(422, f"invalid request: body: {field.message}", [field])
    return error_response(exc.status_code, _PLAIN.get(detail, detail), headers=exc.headers)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal error; the request may not have been applied")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(ValidationError, _invalid)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(BrokerError, _broker)
    app.add_exception_handler(GraphUnavailableError, _graph_unavailable)
    for kind in _OUTAGES:
        app.add_exception_handler(kind, _outage)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)


#: The error answers every protected route may give, for the OpenAPI document.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong API key"},
    422: {"model": ErrorBody, "description": "invalid request; `fields` names each field"},
    503: {"model": ErrorBody, "description": "the ledger or Redis is unavailable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no broadcast with this id"}
}
