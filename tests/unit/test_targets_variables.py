"""Targets files carry variables for personal text (issue 15 item 2): a CSV file's columns
beside tenant, group and channel, a JSON object's keys beside them. Errors name the line (CSV)
or the item (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.targets import read_targets
from threadcast.errors import ValidationError

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
C = "19:general@thread.tacv2"


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_columns_beside_the_three_are_each_rows_variables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "team_name,tenant,group,channel,region\n"
        f'"Sales, EMEA",{T},{G},{C},north\n'
        f"Ops,{T},{G},19:ops@thread.tacv2,\n",
    )
    first, second = read_targets(path)
    assert (first.tenant, first.group, first.channel) == (T, G, C)
    assert first.variables == {"team_name": "Sales, EMEA", "region": "north"}
    assert second.variables == {"team_name": "Ops", "region": ""}  # an empty cell: ""


def test_a_csv_file_of_the_three_columns_only_has_no_variables(tmp_path: Path) -> None:
    (target,) = read_targets(write(tmp_path, f"tenant,group,channel\n{T},{G},{C}\n"))
    assert target.variables is None


def test_a_bad_id_on_a_row_with_variables_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"tenant,group,channel,team_name\n{T},{G},{C},A\n{T},nope,{C},B\n")
    with pytest.raises(ValidationError, match=r"t\.csv line 3\.group: "):
        read_targets(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"tenant,group,channel,team\n{T},{G},{C}\n", r"line 2: must have exactly 4 columns"),
        (f"tenant,group,channel,team\n{T},{G},{C},a,b\n", r"line 2: must have exactly 4 columns"),
        (f"tenant,group,channel,team name\n{T},{G},{C},a\n", r"line 1: a variable column's"),
        (f"tenant,group,channel,x,x\n{T},{G},{C},a,b\n", r"line 1: names a variable column twice"),
        (f"tenant,group,channel,tenant\n{T},{G},{C},{T}\n", r"line 1: the header must be"),
        (f"tenant,group,team\n{T},{G},a\n", r"line 1: the header must be tenant,group,channel"),
        (f"tenant,group,channel,t\n{T},{G},{C},{'x' * 2001}\n", r"line 2\.t: must be at most"),
    ],
)
def test_bad_variable_columns_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read_targets(write(tmp_path, text))


def test_json_keys_beside_the_three_are_variables(tmp_path: Path) -> None:
    items = [
        {"tenant": T, "group": G, "channel": C, "team_name": "Sales", "seats": 12},
        {"tenant": T, "group": G, "channel": "19:b@thread.tacv2"},
    ]
    first, second = read_targets(write(tmp_path, json.dumps(items), "t.json"))
    assert first.variables == {"team_name": "Sales", "seats": "12"}
    assert second.variables is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"team": {"name": "x"}}, r"item 1\.team: must be text or a number"),
        ({"team": True}, r"item 1\.team: must be text or a number"),
        ({"not a name": "x"}, r"item 1: variable names must be identifiers"),
        ({"team": "a\x00b"}, r"item 1\.team: must not contain NUL"),
    ],
)
def test_bad_json_variables_name_the_item(
    tmp_path: Path, extra: dict[str, object], message: str
) -> None:
    items = [
        {"tenant": T, "group": G, "channel": C},
        {"tenant": T, "group": G, "channel": C, **extra},
    ]
    with pytest.raises(ValidationError, match=message):
        read_targets(write(tmp_path, json.dumps(items), "t.json"))
