"""Reading target lists from files: CSV with a ``tenant,group,channel`` header, or JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from threadcast.contract import Target
from threadcast.errors import ValidationError

COLUMNS = ("tenant", "group", "channel")


def read_targets(path: Path) -> list[Target]:
    """Every target in the file, validated; errors name the file and the line or item."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError("--targets", str(path), f"cannot be read: {exc}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        return _from_json(path, text)
    return _from_csv(path, text)


def _from_csv(path: Path, text: str) -> list[Target]:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if sorted(header) != sorted(COLUMNS):
        raise ValidationError(
            f"{path} line 1", ",".join(header), "the header must be tenant,group,channel"
        )
    reader.fieldnames = header
    targets = []
    for row in reader:
        where = f"{path} line {reader.line_num}"
        if None in row or any(row.get(c) is None for c in COLUMNS):
            raise ValidationError(where, row, "must have exactly 3 columns")
        targets.append(Target.parse(where, {k: (v or "").strip() for k, v in row.items()}))
    if not targets:
        raise ValidationError(str(path), "", "holds no targets")
    return targets


def _from_json(path: Path, text: str) -> list[Target]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} line {exc.lineno}", exc.doc[exc.pos : exc.pos + 20],
                              f"is not valid JSON: {exc.msg}") from None  # fmt: skip
    if not isinstance(items, list) or not items:
        raise ValidationError(str(path), type(items).__name__, "must be a non-empty JSON list")
    return [Target.parse(f"{path} item {i}", item) for i, item in enumerate(items)]
