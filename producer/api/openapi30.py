"""The API's OpenAPI 3.1 document (``/openapi.json``) as 3.0, for the bundled Swagger UI
4.15.5 (``/docs``), which renders 3.0 only: ``null`` in ``anyOf``/``oneOf`` or in a type list
becomes ``nullable``, a ``const`` a one-value ``enum``, a schema's ``examples`` list its
``example``, a numeric ``exclusiveMinimum``/``Maximum`` the 3.0 boolean form; 3.1-only
keywords are dropped. ``/openapi.json`` itself stays 3.1."""

from __future__ import annotations

from typing import Any

_DROPPED = frozenset({"contentMediaType", "contentEncoding", "$schema"})
_NULL = {"type": "null"}


def as_openapi_30(node: Any) -> Any:
    if isinstance(node, list):
        return [as_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for name, value in node.items():
        if name not in _DROPPED:
            out.update(_keyword(name, value))
    for key in ("anyOf", "oneOf"):
        out = _nullable(out, key)
    return out


def _keyword(name: str, value: Any) -> dict[str, Any]:
    if name == "const":
        return {"enum": [value]}
    if name == "examples" and isinstance(value, list):
        return {"example": as_openapi_30(value[0])} if value else {}
    if name in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
        return {"minimum" if name == "exclusiveMinimum" else "maximum": value, name: True}
    if name == "type" and isinstance(value, list):
        kinds = [k for k in value if k != "null"]
        found: dict[str, Any] = {"type": kinds[0] if kinds else "string"}
        return found | ({"nullable": True} if "null" in value else {})
    return {name: as_openapi_30(value)}


def _nullable(schema: dict[str, Any], key: str) -> dict[str, Any]:
    options = schema.get(key)
    if not isinstance(options, list) or _NULL not in options:
        return schema
    rest = [o for o in options if o != _NULL]
    out = {k: v for k, v in schema.items() if k != key} | {"nullable": True}
    if len(rest) == 1 and "$ref" not in rest[0]:
        return {**rest[0], **out}
    # A $ref beside nullable is ignored in 3.0 unless it sits in allOf.
    return out | ({"allOf": rest} if len(rest) == 1 else {key: rest})
