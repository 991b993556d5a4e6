"""The producer's fast paths give exactly what the plain ones give (issue 8, enqueue)."""

from __future__ import annotations

import json
import math
import random
import uuid

import pytest

from tests.reference import delivery_id
from threadcast import ids
from threadcast.constants import ENTRY_VERSION
from threadcast.contract import Broadcast, ContentType, DeliveryMessage, Target
from threadcast.errors import ValidationError

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GROUP = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
CHANNEL = "19:09fc54a3141a45d0bc769cf506d2e079@thread.skype"


@pytest.mark.parametrize(
    "broadcast", ["b1", "x" * 128, "a:b.c-d_e", "é€\x1f", "3f0c2a9e-5b1d-4c7e-9a8f-6d2e1b0c4a7f"]
)
def test_delivery_ids_are_the_uuid5_delivery_id(broadcast: str) -> None:
    make = ids.delivery_ids(broadcast)
    rng = random.Random(broadcast)
    for _ in range(2000):
        tenant, group = str(uuid.UUID(int=rng.getrandbits(128))), str(uuid.uuid4()).upper()
        channel = f"19:{rng.getrandbits(64):x}{chr(rng.randint(32, 0x2FFF))}@thread.tacv2"
        assert make(tenant, group, channel) == delivery_id(broadcast, tenant, group, channel)


def test_deliveries_keep_order_and_collapse_duplicates() -> None:
    targets = tuple(Target(TENANT, GROUP, f"19:c{i % 7}@thread.tacv2") for i in range(20))
    batch = Broadcast("b", "x", ContentType.TEXT, targets).deliveries()
    assert [d.target.channel for d in batch] == [f"19:c{i}@thread.tacv2" for i in range(7)]
    assert [d.id for d in batch] == [
        delivery_id("b", TENANT, GROUP, f"19:c{i}@thread.tacv2") for i in range(7)
    ]


def _dumps(m: DeliveryMessage, at: float) -> str:
    body = {
        "v": ENTRY_VERSION,
        "d": m.delivery_id,
        "b": m.broadcast_id,
        "t": m.tenant,
        "g": m.group,
        "c": m.channel,
        "a": round(at, 3),
    }
    return json.dumps(body, separators=(",", ":"))


@pytest.mark.parametrize(
    "at", [1_800_000_000.123456, 0.0, -0.0, 1e22, 5e-324, 0.1 + 0.2, 7, math.inf, math.nan]
)
def test_entry_is_the_json_text(at: float) -> None:
    for broadcast in ("b1", 'q"uote\\back\nline\u2028é'):
        m = DeliveryMessage(str(uuid.uuid4()), broadcast, TENANT, GROUP, CHANNEL)
        assert m.entry(at) == _dumps(m, at)
        assert DeliveryMessage.from_entry(m.entry(1.5)) == DeliveryMessage(
            m.delivery_id, broadcast, TENANT, GROUP, CHANNEL, None, 1.5
        )


def test_entry_of_a_non_text_field_is_still_json() -> None:
    m = DeliveryMessage(5, "b", TENANT, GROUP, CHANNEL)  # type: ignore[arg-type]
    assert m.entry(2.0) == _dumps(m, 2.0)


def test_target_parse_lowercases_and_names_the_first_bad_field() -> None:
    parsed = Target.parse(
        "t", {"tenant": TENANT.upper(), "group": GROUP.upper(), "channel": CHANNEL}
    )
    assert parsed == Target(TENANT, GROUP, CHANNEL)
    cases = [
        ({"tenant": "x", "group": "y", "channel": "z"}, r"^targets\[3\]\.tenant: "),
        ({"tenant": TENANT, "group": "y", "channel": "z"}, r"^targets\[3\]\.group: "),
        ({"tenant": TENANT, "group": GROUP, "channel": "z"}, r"^targets\[3\]\.channel: "),
        ({"tenant": TENANT, "group": GROUP}, r"^targets\[3\]\.channel: "),
        ({"tenant": TENANT + "\n", "group": GROUP, "channel": CHANNEL}, r"^targets\[3\]\.tenant"),
        (
            {"tenant": TENANT, "group": GROUP, "channel": "19:" + "a" * 300 + "@thread.tacv2"},
            r"^targets\[3\]\.channel: ",
        ),
        ({"tenant": 5, "group": GROUP, "channel": CHANNEL}, r"^targets\[3\]\.tenant: "),
    ]
    for raw, message in cases:
        with pytest.raises(ValidationError, match=message):
            Target.parse("targets[3]", raw)
