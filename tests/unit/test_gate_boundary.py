"""The gate's boundary, checked without Redis: the entry format is versioned, and every key
name a gate script uses comes from keys.py (in KEYS, or formatted from its patterns)."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from threadcast.constants import ENTRY_VERSION, KEY_PREFIX
from threadcast.contract import ContractError, DeliveryMessage
from threadcast.dispatch import keys

D = "6d2b5c1e-3f0a-4b8e-9a71-2c4d5e6f7a8b"
T = "11111111-2222-3333-4444-555555555555"
G = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
C = "19:abc@thread.tacv2"

_SCRIPTS = sorted(
    f.name for f in resources.files("threadcast.dispatch").iterdir() if f.name.endswith(".lua")
)


def test_an_entry_carries_its_version_and_reads_back() -> None:
    message = DeliveryMessage(D, "b1", T, G, C)
    entry = message.entry(1_700_000_000.25)
    assert json.loads(entry)["v"] == ENTRY_VERSION
    back = DeliveryMessage.from_entry(entry, "permit")
    assert (back.delivery_id, back.broadcast_id, back.tenant, back.group, back.channel) == (
        D,
        "b1",
        T,
        G,
        C,
    )
    assert back.permit == "permit" and back.ready_at == 1_700_000_000.25


def test_an_entry_written_before_versions_reads_as_version_one() -> None:
    old = json.dumps({"d": D, "b": "b1", "t": T, "g": G, "c": C, "a": 5.0})
    assert DeliveryMessage.from_entry(old).delivery_id == D


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        (json.dumps({"v": 2, "d": D, "b": "b1", "t": T, "g": G, "c": C}), "version 2"),
        (json.dumps({"v": 1, "d": D, "b": "b1", "t": T, "g": G}), "d, b, t, g, c"),
        (json.dumps({"v": 1, "d": 7, "b": "b1", "t": T, "g": G, "c": C}), "d, b, t, g, c"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_an_entry_this_version_cannot_read_is_a_contract_error(raw: str, named: str) -> None:
    with pytest.raises(ContractError, match=re.escape(named)):
        DeliveryMessage.from_entry(raw)


@pytest.mark.parametrize("script", _SCRIPTS)
def test_no_gate_script_spells_a_key_name(script: str) -> None:
    """Key names are keys.py's: a script gets them in KEYS, or the patterns of keys.patterns()
    in ARGV; none holds the prefix or a key's name fragment."""
    source = (resources.files("threadcast.dispatch") / script).read_text(encoding="utf-8")
    code = "\n".join(line.split("--", 1)[0] for line in source.splitlines())
    assert KEY_PREFIX not in code
    for fragment in ("q:", "teams:", "log:", "day:", "cool:", "{dispatch}"):
        assert f"'{fragment}" not in code and f'"{fragment}' not in code, (script, fragment)


def test_the_patterns_and_the_key_builders_agree() -> None:
    assert keys.queue(T, G) == keys.QUEUE % (T, G)
    assert keys.channel_log(T, G, C).startswith(keys.PREFIX)
    assert keys.cooldown(keys.channel_scope(T, G, C)) == keys.CHANNEL_COOL % (T, G, C)
    assert keys.cooldown(keys.team_scope(T, G)) == keys.TEAM_COOL % (T, G)
    assert keys.cooldown(keys.tenant_scope(T)) == keys.TENANT_COOL % T
    assert all(p.count("%s") >= 1 for p in keys.patterns())


def test_a_permits_day_is_its_issue_day_in_utc() -> None:
    assert keys.permit_day(f"{D}@86399.999999") == keys.DAY % "19700101"
    assert keys.permit_day(f"{D}@86400.000001") == keys.DAY % "19700102"
    assert keys.permit_day(f"{D}@late") == keys.permit_day(None) == keys.NO_DAY


def test_days_around_name_yesterday_today_and_tomorrow() -> None:
    assert keys.days_around(86400 * 1.5) == [keys.DAY % f"197001{d:02}" for d in (1, 2, 3)]
