"""Reading target lists from files: CSV with a ``tenant,group,channel`` header, or JSON.

Beside those three, a CSV file's other columns and a JSON object's other keys are the
target's variables, filled into a personal broadcast's content (``{{ team_name }}``,
threadcast/personal.py): a column's name is the variable's, each row's cell its value (an
empty cell is an empty string).

Files are read as a stream: each row is validated when the reader reaches it and nothing
keeps the rows already read, so a file of a million targets takes no more memory than one
of ten (``threadcast send`` commits them a chunk at a time).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from threadcast import ids
from threadcast.contract import Target
from threadcast.errors import ValidationError
from threadcast.personal import check_variables

if TYPE_CHECKING:
    from _csv import Reader

COLUMNS = ("tenant", "group", "channel")
_READ = 1 << 16  # characters read at a time from a JSON file (and the most a peek reads)
_MAX_ITEM = 1 << 20  # a JSON item longer than this is no target: report it, read no further
_NON_SPACE = re.compile(r"[^ \t\n\r]")  # JSON's whitespace
_DECODER = json.JSONDecoder()


def read_targets(path: Path) -> list[Target]:
    """Every target in the file, validated; errors name the file and the line or item."""
    return list(stream_targets(path))


def stream_targets(path: Path) -> Iterator[Target]:
    """The file's targets one at a time, each validated as it is read.

    The file is opened and its start checked now (readable, a CSV header or a JSON list);
    a bad row raises ValidationError naming the file and its line (JSON: item) when the
    iteration reaches it. The file is closed when the iteration ends, fails or is closed.
    """
    stream = _open(path)
    try:
        start = _peek(path, stream)
        if path.suffix.lower() == ".json" or start.lstrip().startswith("["):
            targets = _json_targets(path, stream, start)
        else:
            lines = itertools.chain(start.splitlines(keepends=True), stream)
            targets = _csv_targets(path, lines)
    except BaseException:
        stream.close()
        raise
    return _closing(stream, targets)


def _open(path: Path) -> TextIO:
    try:
        # newline="": the csv module reads line ends itself (a quoted field may hold one).
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise _unreadable("--targets", path, exc) from None


def _unreadable(where: str, path: Path, exc: Exception) -> ValidationError:
    return ValidationError(where, str(path), f"cannot be read: {exc}")


def _peek(path: Path, stream: TextIO) -> str:
    """The file's first lines up to and including its first non-blank one (what tells CSV
    from JSON), in bounded pieces: a one-line JSON file is not read whole here."""
    start = ""
    while not start.strip():
        piece = _read(path, lambda: stream.readline(_READ))
        if not piece:
            break
        start += piece
    return start


def _read(path: Path, read: Callable[[], str]) -> str:
    try:
        return read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _unreadable("--targets", path, exc) from None


def _closing(stream: TextIO, targets: Iterator[Target]) -> Iterator[Target]:
    with stream:
        yield from targets


def _csv_targets(path: Path, lines: Iterator[str]) -> Iterator[Target]:
    """Checks the header now; the rows are checked as they are read."""
    reader = csv.reader(lines)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        raise ValidationError(f"{path} line 1", str(path), f"is not valid CSV: {exc}") from None
    return _csv_rows(path, reader, _Columns.of(path, header))


class _Columns:
    """Where a CSV file's tenant, group and channel are, and its variables' columns."""

    def __init__(self, width: int, order: list[int], variables: list[tuple[str, int]]) -> None:
        self.width, self.order, self.variables = width, order, variables

    @classmethod
    def of(cls, path: Path, header: list[str]) -> _Columns:
        where = f"{path} line 1"
        if not all(header.count(column) == 1 for column in COLUMNS):
            raise ValidationError(
                where,
                ",".join(header),
                "the header must be tenant,group,channel (each once), then any variable columns",
            )
        variables = [(name, n) for n, name in enumerate(header) if name not in COLUMNS]
        seen: set[str] = set()
        for name, _ in variables:
            if not name.isidentifier():
                raise ValidationError(
                    where, name, "a variable column's name must be an identifier (team_name)"
                )
            if name in seen:
                raise ValidationError(where, name, "names a variable column twice")
            seen.add(name)
        return cls(len(header), [header.index(column) for column in COLUMNS], variables)


def _csv_rows(path: Path, reader: Reader, columns: _Columns) -> Iterator[Target]:
    try:
        count = yield from _csv_checked(path, reader, columns)
    except (OSError, UnicodeDecodeError) as exc:
        # Half-way through the file (bad UTF-8): about where, since a read takes a block.
        raise _unreadable(f"{path} near line {reader.line_num + 1}", path, exc) from None
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
        where = f"{path} line {reader.line_num}"
        raise ValidationError(where, str(path), f"is not valid CSV: {exc}") from None
    if not count:
        raise ValidationError(str(path), "", "holds no targets")


def _csv_checked(path: Path, reader: Reader, columns: _Columns) -> Generator[Target, None, int]:
    """Each row's target; returns how many."""
    tenant, group, channel = columns.order
    width, named = columns.width, columns.variables
    count = 0
    for row in reader:
        if not row:
            continue  # a blank line, as csv.DictReader skipped them
        if len(row) != width:
            where = f"{path} line {reader.line_num}"
            raise ValidationError(where, row, f"must have exactly {width} columns")
        fields = row[tenant].strip(), row[group].strip(), row[channel].strip()
        variables = None
        if named:
            where = f"{path} line {reader.line_num}"
            variables = check_variables(where, {name: row[n] for name, n in named})
        valid = ids.valid_target(*fields)
        origin = f"{path} line {reader.line_num}" if named else None
        if valid is None:  # Target.parse names the field
            where = f"{path} line {reader.line_num}"
            target = Target.parse(where, dict(zip(COLUMNS, fields, strict=True)))
            yield Target(target.tenant, target.group, target.channel, variables, origin)
        else:
            yield Target(*valid, variables, origin)
        count += 1
    return count


def _json_targets(path: Path, stream: TextIO, start: str) -> Iterator[Target]:
    items = _JsonItems(path, stream, start)  # checks the opening bracket now
    return (_json_target(f"{path} item {i}", item) for i, item in enumerate(items))


def _json_target(where: str, item: object) -> Target:
    target = Target.parse(where, item)
    if target.variables is None:
        return target
    return Target(target.tenant, target.group, target.channel, target.variables, where)


class _JsonItems:
    """The items of a file's top-level JSON list, decoded one at a time.

    Only the text not yet decoded is kept (at most one item past a read of _READ
    characters), with the number of its first line, so an error names its line as
    json.loads would."""

    def __init__(self, path: Path, stream: TextIO, start: str) -> None:
        self._path, self._stream = path, stream
        self._text, self._pos, self._line = start, 0, 1
        if self._next_char() != "[":
            raise ValidationError(
                str(path), self._text[self._pos : self._pos + 20], "must be a non-empty JSON list"
            )
        self._pos += 1

    def __iter__(self) -> Iterator[object]:
        if self._next_char() == "]":
            raise ValidationError(str(self._path), [], "must be a non-empty JSON list")
        while True:
            self._next_char()
            yield self._item()
            separator = self._next_char()
            self._pos += 1
            if separator == "]":
                break
            if separator != ",":
                raise self._invalid(self._pos - 1, "Expecting ',' delimiter")
        if self._next_char():
            raise self._invalid(self._pos, "Extra data")

    def _item(self) -> object:
        while True:
            try:
                item, end = _DECODER.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as exc:
                if len(self._text) - self._pos < _MAX_ITEM and self._more():
                    continue  # the item goes on in the next piece
                raise self._invalid(exc.pos, exc.msg) from None
            except RecursionError:  # lists in lists deeper than the decoder goes
                raise self._invalid(self._pos, "nested too deeply") from None
            # An item that ends where the text does may go on (a number): decode it whole.
            if end < len(self._text) or not self._more():
                self._pos = end
                return item

    def _next_char(self) -> str:
        """The next character that is not whitespace ('' at the end), reading on as needed."""
        while True:
            found = _NON_SPACE.search(self._text, self._pos)
            if found is not None:
                self._pos = found.start()
                return self._text[self._pos]
            self._pos = len(self._text)
            if not self._more():
                return ""

    def _more(self) -> bool:
        """Read the next piece after the text not yet decoded; False at the end of the file."""
        piece = _read(self._path, lambda: self._stream.read(_READ))
        if not piece:
            return False
        self._line += self._text.count("\n", 0, self._pos)
        self._text = self._text[self._pos :] + piece
        self._pos = 0
        return True

    def _invalid(self, pos: int, message: str) -> ValidationError:
        line = self._line + self._text.count("\n", 0, pos)
        return ValidationError(
            f"{self._path} line {line}", self._text[pos : pos + 20], f"is not valid JSON: {message}"
        )
