"""Personal text: a broadcast's content (and subject) as a template, filled in per delivery
with the variables of its target (the extra columns of a targets file, or the extra fields
of a target object), e.g. ``Hello {{ team_name }}``.

Templates are Jinja2's, rendered in its sandbox (no attribute of Python internals is
reachable) with every variable required (a missing one is an error, never an empty string),
and HTML-escaped into HTML bodies. Content is a template only when the broadcast gives
variables: without them ``{{`` is text like any other, as it always was.

:func:`check` renders every delivery before anything is stored, so a variable missing on any
row is an error naming the row and the variable, and a rendered body over Graph's size an
error naming the row.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from threadcast.constants import MAX_CONTENT_BYTES
from threadcast.errors import ValidationError
from threadcast.message import MAX_SUBJECT_CHARS, MessageParts
from threadcast.text import check_text

Variables = Mapping[str, str]

_ENVIRONMENTS = {
    html: SandboxedEnvironment(
        autoescape=html, undefined=StrictUndefined, keep_trailing_newline=True
    )
    for html in (True, False)
}
MAX_VARIABLES = 50
MAX_VALUE_CHARS = 2000
#: What a template may use: its variables, text, and these filters (with constant arguments).
#: No tags ({% if %}, {% for %}), no arithmetic, no calls, no attributes: a template fills
#: values in, it does not compute (Jinja folds constants while compiling, so
#: ``{{ 'x' * 10**10 }}`` would build a 10 GB string before any sandbox check), and what it
#: renders has the same cards, images and mentions for every delivery.
FILTERS = frozenset({"default", "upper", "lower", "title", "capitalize", "trim", "truncate"})
_ALLOWED = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Filter, nodes.Const)


class Template:
    """One text of a broadcast (content or subject), compiled once."""

    def __init__(self, field_name: str, text: str, *, html: bool) -> None:
        environment = _ENVIRONMENTS[html]
        try:
            parsed = environment.parse(text)
            _only_substitution(field_name, text, parsed)
            self._template = environment.from_string(parsed)
        except TemplateError as exc:
            raise ValidationError(field_name, text, f"is not a valid template: {exc}") from None
        self.field = field_name
        self.names = frozenset(meta.find_undeclared_variables(parsed))

    def render(self, variables: Variables) -> str:
        return self._template.render(variables)


def _only_substitution(field_name: str, text: str, parsed: nodes.Template) -> None:
    """Refuse anything but ``{{ name }}`` and ``{{ name | filter(constant, ...) }}``."""
    for node in parsed.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED):
            raise ValidationError(
                field_name,
                text,
                "may only fill in variables ({{ team_name }}, with the filters "
                f"{', '.join(sorted(FILTERS))}): {type(node).__name__} is not allowed",
            )
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise ValidationError(
                field_name,
                text,
                f"uses the filter {node.name!r}, not one of {', '.join(sorted(FILTERS))}",
            )
        if isinstance(node, nodes.Const) and not isinstance(node.value, str | int | bool):
            raise ValidationError(field_name, text, f"holds the constant {node.value!r}")
        if isinstance(node, nodes.Name) and node.ctx != "load":
            raise ValidationError(field_name, text, f"assigns {node.name!r}")


@functools.lru_cache(maxsize=256)
def compiled(field_name: str, text: str, html: bool) -> Template:
    """A template compiled once per process (the worker renders many deliveries of one)."""
    return Template(field_name, text, html=html)


def check_variables(where: str, raw: object) -> dict[str, str]:
    """A target's variables: names are identifiers, values text."""
    if not isinstance(raw, Mapping):
        raise ValidationError(where, raw, "must be an object of name: text")
    if len(raw) > MAX_VARIABLES:
        raise ValidationError(where, f"<{len(raw)} variables>", f"must be at most {MAX_VARIABLES}")
    checked: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValidationError(f"{where}", name, "variable names must be identifiers")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationError(f"{where}.{name}", value, "must be text or a number")
        text = check_text(f"{where}.{name}", str(value))  # no NUL, no lone surrogate
        if len(text) > MAX_VALUE_CHARS:
            raise ValidationError(
                f"{where}.{name}", text, f"must be at most {MAX_VALUE_CHARS} characters"
            )
        checked[name] = text
    return checked


class Filling:
    """A personal broadcast's texts, ready to check row after row: what each needs is
    worked out once, not per row (a send checks every target as it streams past)."""

    def __init__(
        self, templates: Iterable[Template], parts: MessageParts | None = None, *, html: bool
    ) -> None:
        self._needed = [(t, sorted(t.names)) for t in templates]
        self._parts = parts
        self._html = html

    def check(self, where: str, variables: Variables) -> None:
        """Fill one row in (``where`` names it, e.g. ``targets[3]``); a missing variable, a
        template that fails while filled in, or a filled-in message over Graph's sizes (with
        the parts: its subject, cards and mentions counted too) is an error naming the row."""
        filled: dict[str, str] = {}
        for template, names in self._needed:
            for name in names:
                if name not in variables:
                    raise ValidationError(
                        f"{where}.{name}",
                        sorted(variables),
                        f"is missing: {template.field} uses {{{{ {name} }}}}",
                    )
            filled[template.field] = fill(template, variables, where)
        _check_filled(where, filled, self._parts, self._html)


def check(
    templates: Iterable[Template],
    rows: Iterable[tuple[str, Variables]],
    parts: MessageParts | None = None,
    *,
    html: bool = True,
) -> None:
    """Every row filled in and checked (:meth:`Filling.check`)."""
    filling = Filling(templates, parts, html=html)
    for where, variables in rows:
        filling.check(where, variables)


def fill(template: Template, variables: Variables, where: str) -> str:
    """The template filled in; whatever goes wrong (an unsafe attribute, a division by
    zero, a range too big) is a ValidationError naming ``where``."""
    try:
        return template.render(variables)
    except Exception as exc:  # the template is the caller's code: any error is theirs
        raise ValidationError(
            where, dict(variables), f"cannot fill {template.field}: {type(exc).__name__}: {exc}"
        ) from None


def _check_filled(
    where: str, filled: Mapping[str, str], parts: MessageParts | None, html: bool
) -> None:
    subject = filled.get("subject")
    if subject is not None and (not subject.strip() or len(subject) > MAX_SUBJECT_CHARS):
        raise ValidationError(
            f"{where}.subject", subject, f"filled in, must be 1-{MAX_SUBJECT_CHARS} characters"
        )
    content = filled.get("content")
    if content is None:
        return
    if not content.strip():
        raise ValidationError(where, content, "its content, filled in, is empty")
    try:
        if parts is not None and parts.beyond_body:
            parts.check_size(content, html, subject)
        elif len(content.encode()) > MAX_CONTENT_BYTES:
            raise ValidationError(
                "content",
                f"<{len(content.encode())} bytes>",
                f"must be at most {MAX_CONTENT_BYTES} bytes (28 KB)",
            )
    except ValidationError as exc:
        raise ValidationError(where, exc.value, f"filled in, {exc}") from None
