from __future__ import annotations

from pathlib import Path

import pytest

from producer.targets import read_targets
from threadcast.errors import ValidationError

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
C = "19:abc@thread.tacv2"


def test_csv_and_json(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text(f"tenant,group,channel\n{T},{G},{C}\n{T},{G},19:def@thread.skype\n")
    assert [t.channel for t in read_targets(csv)] == [C, "19:def@thread.skype"]
    js = tmp_path / "t.json"
    js.write_text(f'[{{"tenant": "{T}", "group": "{G}", "channel": "{C}"}}]')
    assert read_targets(js)[0].tenant == T


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenant,group\nx,y\n", "line 1: the header must be tenant,group,channel"),
        (f"tenant,group,channel\n{T},{G},{C}\n{T},nope,{C}\n", "line 3.group: must be a GUID"),
        (f"tenant,group,channel\n{T},{G},{C},extra\n", "line 2: must have exactly 3 columns"),
        (f"tenant,group,channel\n{T},{G}\n", "line 2: must have exactly 3 columns"),
        (f"tenant,group,channel\n{T},{G},19:a/b@thread.tacv2\n", "line 2.channel"),
        ("tenant,group,channel\n", "holds no targets"),
    ],
)
def test_csv_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace(".", r"\.")):
        read_targets(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[\n{"tenant": 1,\n', "line 3: is not valid JSON"),
        ("{}", "must be a non-empty JSON list"),
        ("[]", "must be a non-empty JSON list"),
        (
            f'[{{"tenant": "{T}", "group": "{G}", "channel": "{C}"}}, 5]',
            "item 1: must be an object",
        ),
    ],
)
def test_json_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ValidationError, match=message):
        read_targets(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--targets: cannot be read"):
        read_targets(tmp_path / "missing.csv")
