"""threadcast/personal.py and its place in the contract: a target's variables, templates
rendered in Jinja2's sandbox with every variable required, HTML-escaped into HTML bodies,
and every error a ValidationError naming the row (or the field of a broken template)."""

from __future__ import annotations

import pytest

from threadcast.constants import MAX_CONTENT_BYTES
from threadcast.contract import Broadcast, ContentType, Target
from threadcast.errors import ValidationError
from threadcast.message import MessageParts
from threadcast.personal import (
    MAX_VALUE_CHARS,
    MAX_VARIABLES,
    Template,
    check,
    check_variables,
    compiled,
)

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
C = "19:abc@thread.tacv2"


def refused(template: Template, rows: list[tuple[str, dict[str, str]]]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        check([template], rows)
    return caught.value


# --- templates ----------------------------------------------------------------------------------


def test_renders_variables_and_lists_their_names() -> None:
    template = Template("content", "Hello {{ team_name }}, see {{ url }}", html=False)
    assert template.field == "content"
    assert template.names == frozenset({"team_name", "url"})
    assert template.render({"team_name": "Eng", "url": "x"}) == "Hello Eng, see x"
    assert Template("content", "line\n", html=False).render({}) == "line\n"


def test_missing_variable_names_the_row_and_the_variable() -> None:
    template = Template("content", "Hello {{ team_name }} of {{ site }}", html=True)
    rows = [("line 2", {"team_name": "Eng", "site": "Oslo"}), ("line 3", {"team_name": "Ops"})]
    error = refused(template, rows)
    assert error.field == "line 3.site"
    assert "{{ site }}" in error.reason
    assert "content uses" in error.reason
    assert error.value == ["team_name"]
    check([template], rows[:1])


def test_missing_variable_of_the_subject() -> None:
    content = Template("content", "Hi", html=True)
    subject = Template("subject", "For {{ team_name }}", html=False)
    with pytest.raises(ValidationError) as caught:
        check([content, subject], [("targets[0]", {"team_name": "A"}), ("targets[1]", {})])
    assert caught.value.field == "targets[1].team_name"
    assert "subject uses {{ team_name }}" in caught.value.reason


def test_a_tag_is_refused_a_template_only_fills_in() -> None:
    with pytest.raises(ValidationError) as caught:
        Template("content", "{% if vip %}{{ vip }}{% endif %}", html=False)
    assert caught.value.field == "content" and "If is not allowed" in caught.value.reason


def test_values_are_escaped_into_html_content_only() -> None:
    value = {"name": '<b>R&D</b> "x"'}
    html = Template("content", "<p>{{ name }}</p>", html=True)
    assert html.render(value) == "<p>&lt;b&gt;R&amp;D&lt;/b&gt; &#34;x&#34;</p>"
    text = Template("content", "<p>{{ name }}</p>", html=False)
    assert text.render(value) == '<p><b>R&D</b> "x"</p>'


def test_broadcast_escapes_content_but_not_subject() -> None:
    broadcast = Broadcast(
        "b-personal",
        "<p>Hello {{ team }}</p>",
        ContentType.HTML,
        (Target(T, G, C, {"team": "R&D <ops>"}),),
        parts=MessageParts(subject="News for {{ team }}"),
        personal=True,
    )
    content, subject = broadcast.templates()
    assert (content.field, subject.field) == ("content", "subject")
    assert content.render({"team": "R&D <ops>"}) == "<p>Hello R&amp;D &lt;ops&gt;</p>"
    assert subject.render({"team": "R&D <ops>"}) == "News for R&D <ops>"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ team.__class__.__mro__[1].__subclasses__() }}",
        "{{ team.format.__globals__ }}",
        "{{ team.__init__.__globals__ }}",
    ],
)
def test_python_internals_are_refused_before_anything_runs(text: str) -> None:
    for html in (True, False):
        with pytest.raises(ValidationError) as caught:
            Template("content", text, html=html)
        assert caught.value.field == "content" and "is not allowed" in caught.value.reason


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("content", "Hello {{ team_name"),
        ("content", "{% if x %}no end"),
        ("subject", "{% for %}"),
        ("content", "{{ }}"),
    ],
)
def test_broken_template_names_the_field(field: str, text: str) -> None:
    for html in (True, False):
        with pytest.raises(ValidationError) as caught:
            Template(field, text, html=html)
        assert caught.value.field == field
        assert "is not a valid template" in caught.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "{{ 1 / 0 }}",
        "{% for i in range(1000000) %}{% endfor %}",
        "{{ team | int + 'a' }}",
        "{{ 'x' * 10**10 }}",  # folded while compiling: refused before it is
        "{{ team | attr('upper') }}",
        "{{ range(10) }}",
        "{% set x = 1 %}",
    ],
)
def test_anything_but_filling_in_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Template("content", text, html=True)
    assert caught.value.field == "content"
    assert "is not allowed" in caught.value.reason or "not one of" in caught.value.reason


def test_variables_and_the_allowed_filters_fill_in() -> None:
    template = Template(
        "content", "{{ team | trim | upper }} / {{ x | default('none') }}", html=True
    )
    assert template.render({"team": " eng ", "x": ""}) == "ENG / "


def test_filled_content_over_28_kb_names_the_row() -> None:
    template = Template("content", "{{ a }}" * 15, html=False)
    small = {"a": "x" * (MAX_CONTENT_BYTES // 15)}
    big = {"a": "x" * MAX_VALUE_CHARS}
    check([template], [("line 2", small)])
    error = refused(template, [("line 2", small), ("line 3", big)])
    assert error.field == "line 3"
    assert error.value == f"<{15 * MAX_VALUE_CHARS} bytes>"


def test_escaping_counts_toward_the_filled_size() -> None:
    template = Template("content", "{{ a }}" * 15, html=True)
    value = {"a": "&" * (MAX_CONTENT_BYTES // 15)}  # each & becomes &amp;
    check([Template("content", "{{ a }}" * 15, html=False)], [("line 9", value)])
    assert refused(template, [("line 9", value)]).field == "line 9"


def test_a_filled_in_subject_over_its_limit_names_the_row() -> None:
    subject = Template("subject", "{{ a }}" * 15, html=False)
    with pytest.raises(ValidationError) as caught:
        check([subject], [("line 2", {"a": "x" * MAX_VALUE_CHARS})])
    assert caught.value.field == "line 2.subject"
    assert "1-255 characters" in caught.value.reason


def test_compiled_once() -> None:
    first = compiled("content", "Hi {{ who }}", True)
    assert compiled("content", "Hi {{ who }}", True) is first
    assert compiled("content", "Hi {{ who }}", False) is not first
    with pytest.raises(ValidationError) as caught:
        compiled("subject", "{{", False)
    assert caught.value.field == "subject"


# --- variables ----------------------------------------------------------------------------------


def test_check_variables_keeps_text_and_numbers_as_text() -> None:
    raw = {"team_name": "Eng", "floor": 3, "ratio": 0.5, "_x": "", "naïve": "ok"}
    assert check_variables("targets[0]", raw) == {
        "team_name": "Eng",
        "floor": "3",
        "ratio": "0.5",
        "_x": "",
        "naïve": "ok",
    }
    many = {f"v{n}": "x" * MAX_VALUE_CHARS for n in range(MAX_VARIABLES)}
    assert check_variables("line 2", many) == many


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (["team_name"], "targets[0]", "must be an object"),
        ({"team name": "x"}, "targets[0]", "must be identifiers"),
        ({"1st": "x"}, "targets[0]", "must be identifiers"),
        ({"": "x"}, "targets[0]", "must be identifiers"),
        ({"a-b": "x"}, "targets[0]", "must be identifiers"),
        ({3: "x"}, "targets[0]", "must be identifiers"),
        ({"team": None}, "targets[0].team", "must be text or a number"),
        ({"team": True}, "targets[0].team", "must be text or a number"),
        ({"team": ["a"]}, "targets[0].team", "must be text or a number"),
        ({"team": {"a": "b"}}, "targets[0].team", "must be text or a number"),
        ({"team": "x" * (MAX_VALUE_CHARS + 1)}, "targets[0].team", "at most 2000"),
        ({"team": "a\x00b"}, "targets[0].team", "must not contain NUL"),
        ({f"v{n}": "x" for n in range(MAX_VARIABLES + 1)}, "targets[0]", "at most 50"),
    ],
)
def test_check_variables_errors(raw: object, field: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_variables("targets[0]", raw)
    assert caught.value.field == field
    assert reason in caught.value.reason


# --- the contract: targets and broadcasts -----------------------------------------------------


def test_target_extra_keys_are_variables() -> None:
    raw = {"tenant": T.upper(), "group": G, "channel": C, "team_name": "Eng", "floor": 3}
    target = Target.parse("targets[0]", raw)
    assert (target.tenant, target.group, target.channel) == (T, G, C)
    assert target.variables == {"team_name": "Eng", "floor": "3"}
    assert Target.parse("targets[0]", {"tenant": T, "group": G, "channel": C}).variables is None


def test_target_equality_and_hash_ignore_variables() -> None:
    plain = Target.parse("t", {"tenant": T, "group": G, "channel": C})
    one = Target.parse("t", {"tenant": T, "group": G, "channel": C, "team_name": "A"})
    other = Target.parse("t", {"tenant": T, "group": G, "channel": C, "team_name": "B"})
    assert plain == one == other
    assert hash(plain) == hash(one) == hash(other)
    assert len({plain, one, other}) == 1
    assert one != Target(T, G, "19:def@thread.tacv2", {"team_name": "A"})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"tenant": T, "group": G, "channel": C, "team name": "x"}, "targets[3]"),
        ({"tenant": T, "group": G, "channel": C, "team": None}, "targets[3].team"),
        ({"tenant": T, "group": "nope", "channel": C, "team": "x"}, "targets[3].group"),
        ({"tenant": T, "group": G, "chan": C, "team": "x"}, "targets[3].channel"),
    ],
)
def test_target_errors_name_the_target(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Target.parse("targets[3]", raw)
    assert caught.value.field == field


def test_personal_broadcast_compiles_content_and_subject() -> None:
    target = Target(T, G, C, {"team": "Eng"})
    broadcast = Broadcast("b1", "Hi {{ team }}", ContentType.TEXT, (target,), personal=True)
    [content] = broadcast.templates()
    assert (content.field, content.names) == ("content", frozenset({"team"}))
    check(broadcast.templates(), [("targets[0]", {"team": "Eng"})])
    with_subject = Broadcast(
        "b2",
        "<p>Hi {{ team }}</p>",
        ContentType.HTML,
        (target,),
        parts=MessageParts(subject="{{ floor }}"),
        personal=True,
    )
    assert [t.field for t in with_subject.templates()] == ["content", "subject"]
    error = refused(with_subject.templates()[1], [("targets[0]", {"team": "Eng"})])
    assert error.field == "targets[0].floor"


@pytest.mark.parametrize(
    ("content", "subject", "field"),
    [
        ("Hi {{ team", None, "content"),
        ("Hi {{ team }}", "{% if %}", "subject"),
    ],
)
def test_personal_broadcast_with_a_broken_template(
    content: str, subject: str | None, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Broadcast(
            "b3",
            content,
            ContentType.HTML,
            (Target(T, G, C),),
            parts=MessageParts(subject=subject),
            personal=True,
        )
    assert caught.value.field == field


def test_impersonal_broadcast_takes_braces_as_text() -> None:
    broadcast = Broadcast("b4", "Hi {{ team", ContentType.TEXT, (Target(T, G, C),))
    assert broadcast.templates() == []
    assert broadcast.content == "Hi {{ team"


def test_a_filled_in_message_counts_its_parts_toward_the_28_kb() -> None:
    parts = MessageParts(subject="S" * 200)
    content = Template("content", "{{ text }}", html=True)
    room = MAX_CONTENT_BYTES - 200
    check([content], [("targets[0]", {"text": "a" * 2000})], parts)
    with pytest.raises(ValidationError) as caught:
        check([content], [("targets[1]", {"text": "a" * (room + 1)})], parts)
    assert caught.value.field == "targets[1]"
    assert "28 KB" in caught.value.reason
