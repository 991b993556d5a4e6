"""Targets files are read as a stream (issue 12 item 6): memory does not grow with the file,
every row is still checked, and an error still names its line."""

from __future__ import annotations

import json
import tracemalloc
import uuid
from pathlib import Path
from typing import TextIO

import pytest

from producer import targets as targets_module
from producer.targets import read_targets, stream_targets
from threadcast.contract import Target
from threadcast.errors import ValidationError

T = "72f988bf-86f1-41af-91ab-2d7cd011db47"
G = "02bd9fd6-8f93-4758-87c3-1fb73740a315"


def write_csv(path: Path, rows: int, last: str | None = None) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("tenant,group,channel\n")
        for i in range(rows):
            out.write(f"{T},{G},19:c{i}@thread.tacv2\n")
        if last is not None:
            out.write(last + "\n")
    return path


def peak_while_reading(path: Path) -> tuple[int, int]:
    """How many targets the file holds, and the most memory reading it took (bytes)."""
    tracemalloc.start()
    try:
        count = sum(1 for _ in stream_targets(path))
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_file_takes_the_same_memory_whatever_its_size(tmp_path: Path) -> None:
    # Reading the whole file first (as before) peaks at more than the file holds (20 MB).
    small = write_csv(tmp_path / "small.csv", 50_000)
    big = write_csv(tmp_path / "big.csv", 200_000)
    small_count, small_peak = peak_while_reading(small)
    big_count, big_peak = peak_while_reading(big)
    assert (small_count, big_count) == (50_000, 200_000)
    assert big.stat().st_size > 19_000_000
    assert big_peak < 1_000_000, big_peak
    assert big_peak < small_peak + 200_000, (small_peak, big_peak)


def test_a_json_file_is_read_a_piece_at_a_time(tmp_path: Path) -> None:
    items = [{"tenant": T, "group": G, "channel": f"19:c{i}@thread.tacv2"} for i in range(60_000)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(items))  # one line of 5 MB
    count, peak = peak_while_reading(path)
    assert count == 60_000
    assert peak < 1_000_000, peak


def test_a_bad_row_at_the_end_of_a_big_file_names_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", 50_000, last=f"{T},{G},19:a/../b@thread.tacv2")
    reached = 0
    with pytest.raises(ValidationError, match=r"t\.csv line 50002\.channel: must be a Teams"):
        for _ in stream_targets(path):
            reached += 1
    assert reached == 50_000  # every good row came out before the error


def test_the_header_and_an_unreadable_file_are_checked_before_the_rows(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--targets: cannot be read"):
        stream_targets(tmp_path / "missing.csv")
    (tmp_path / "h.csv").write_text("tenant,group\n")
    with pytest.raises(ValidationError, match="line 1: the header must be"):
        stream_targets(tmp_path / "h.csv")
    (tmp_path / "j.json").write_text('{"tenant": 1}')
    with pytest.raises(ValidationError, match="must be a non-empty JSON list"):
        stream_targets(tmp_path / "j.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # columns in any order, spaces around values, a BOM, CRLF, quotes, blank lines
        (
            "\ufeffchannel, tenant ,group\r\n"
            '19:a@thread.tacv2, T ,G\r\n\r\n"19:b@thread.skype",T,G',
            ["19:a@thread.tacv2", "19:b@thread.skype"],
        ),
        ("tenant,group,channel\n\nT,G,19:a@thread.tacv2\n\n", ["19:a@thread.tacv2"]),
        ("\n\ntenant,group,channel\nT,G,19:a@thread.tacv2\n", "line 1: the header must be"),
        ("tenant,group,channel\nT,G,19:a@thread.tacv2\n   \n", "line 3: must have exactly 3"),
        ("tenant,group,channel\n\n\n", "holds no targets"),
    ],
)
def test_csv_files_read_as_before(tmp_path: Path, text: str, expected: list[str] | str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text.replace("T", T).replace(",G", "," + G).encode())
    if isinstance(expected, str):
        with pytest.raises(ValidationError, match=expected):
            read_targets(path)
    else:
        assert read_targets(path) == [Target(T, G, c) for c in expected]


def test_bad_utf8_half_way_names_about_where(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", 20_000)
    with path.open("ab") as out:
        out.write(b"\xff\xfe,,\n")
    with pytest.raises(ValidationError, match=r"t\.csv near line \d+: cannot be read"):
        read_targets(path)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read JSON 7 characters at a time: every item, string and number crosses a piece."""
    monkeypatch.setattr(targets_module, "_READ", 7)


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("indent", [None, 0, 2])
def test_json_items_that_cross_pieces_are_read_whole(tmp_path: Path, indent: int | None) -> None:
    items = [
        {"tenant": T.upper(), "group": G, "channel": f"19:c{i}@thread.tacv2", "n": 12345}
        for i in range(300)
    ]
    path = tmp_path / "t.json"
    path.write_text(" \n " + json.dumps(items, indent=indent) + "\n ")
    assert read_targets(path) == [Target(T, G, f"19:c{i}@thread.tacv2") for i in range(300)]


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[\n{"tenant": 1,\n', "line 3: is not valid JSON"),
        ("[]", "must be a non-empty JSON list"),
        ("[\n  ]", "must be a non-empty JSON list"),
        ("[5]", "item 0: must be an object"),
        ("[\n\n12345678901234567890]", "item 0: must be an object"),  # a number across pieces
        ("[\n{ITEM},\n{ITEM}\n{ITEM}]", "line 4: is not valid JSON: Expecting ',' delimiter"),
        ("[{ITEM}] x", "line 1: is not valid JSON: Extra data"),
        ("[{ITEM},]", "line 1: is not valid JSON: Expecting value"),
        ("[{ITEM}", "line 1: is not valid JSON: Expecting ',' delimiter"),
        ("[" * 100_000, "is not valid JSON"),
    ],
)
def test_json_errors_name_the_line_or_item(tmp_path: Path, text: str, message: str) -> None:
    item = json.dumps({"tenant": T, "group": G, "channel": "19:a@thread.tacv2"})
    path = tmp_path / "t.json"
    path.write_text(text.replace("{ITEM}", item))
    with pytest.raises(ValidationError, match=message):
        read_targets(path)


def test_json_streams_the_same_targets_as_json_loads(tmp_path: Path) -> None:
    items = [
        {"channel": f"19:{uuid.uuid4().hex}@thread.skype", "tenant": T, "group": G}
        for _ in range(2_000)
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(items, indent=1))
    assert read_targets(path) == [Target.parse("x", item) for item in json.loads(path.read_text())]


def test_the_file_is_closed_when_reading_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[TextIO] = []
    real_open = targets_module._open
    monkeypatch.setattr(
        targets_module, "_open", lambda path: opened.append(real_open(path)) or opened[-1]
    )
    stream = stream_targets(write_csv(tmp_path / "t.csv", 10))
    next(stream)
    stream.close()  # the send stopped half-way
    with pytest.raises(ValidationError):
        read_targets(write_csv(tmp_path / "bad.csv", 10, last="x,y,z"))
    assert [f.closed for f in opened] == [True, True]
