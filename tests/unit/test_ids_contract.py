from __future__ import annotations

import uuid

import pytest

from tests.reference import delivery_id
from threadcast import ids
from threadcast.constants import MAX_BATCH, MAX_CONTENT_BYTES
from threadcast.contract import (
    Broadcast,
    ContentType,
    ContractError,
    DeliveryMessage,
    Target,
    batch_from_wire,
    batch_to_wire,
)
from threadcast.errors import ValidationError

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GROUP = "02bd9fd6-8f93-4758-87c3-1fb73740a315"
CHANNEL = "19:09fc54a3141a45d0bc769cf506d2e079@thread.skype"


def target(**over: str) -> dict[str, str]:
    return {"tenant": TENANT, "group": GROUP, "channel": CHANNEL} | over


def test_guid_is_lowercased_and_named_on_error() -> None:
    assert ids.guid("t", TENANT.upper()) == TENANT
    with pytest.raises(ValidationError, match=r"^tenant: must be a GUID.*'nope'"):
        ids.guid("tenant", "nope")


@pytest.mark.parametrize(
    "channel",
    [
        "19:abc/def@thread.tacv2",
        "19:abc..def@thread.tacv2",
        "19:../x@thread.tacv2",
        "19:abc?x=1@thread.tacv2",
        "19:abc#frag@thread.tacv2",
        "19:abc%2F@thread.tacv2",
        "19:abc@thread.tacv2/../../x",
        "19:abc@thread.other",
        "20:abc@thread.tacv2",
        "19:@thread.tacv2",
        "19:" + "a" * 300 + "@thread.tacv2",
        "",
    ],
)
def test_malformed_channel_ids_are_refused(channel: str) -> None:
    with pytest.raises(ValidationError, match=r"targets\[0\]\.channel"):
        Target.parse("targets[0]", target(channel=channel))


@pytest.mark.parametrize(
    "channel", [CHANNEL, "19:a1b2-c3_d4@thread.tacv2", "19:General.x@thread.tacv2"]
)
def test_valid_channel_ids(channel: str) -> None:
    assert Target.parse("t", target(channel=channel)).channel == channel


def test_delivery_id_is_deterministic_and_distinct() -> None:
    first = delivery_id("b1", TENANT, GROUP, CHANNEL)
    assert first == delivery_id("b1", TENANT, GROUP, CHANNEL)
    assert first != delivery_id("b2", TENANT, GROUP, CHANNEL)
    assert first != delivery_id("b1", TENANT, GROUP, "19:other@thread.tacv2")


def test_delivery_id_is_stable_across_releases() -> None:
    # Pinned: changing the namespace or the join would re-send every re-submitted broadcast.
    expected = uuid.uuid5(
        uuid.UUID("6d1c3a52-3f55-4c39-9a0e-4f1e1f6c7a10"), f"b1\x1f{TENANT}\x1f{GROUP}\x1f{CHANNEL}"
    )
    assert delivery_id("b1", TENANT, GROUP, CHANNEL) == str(expected)


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "a b", "x" * 129, "a..b", "-x", "a\nb"])
def test_bad_broadcast_ids(bad: str) -> None:
    with pytest.raises(ValidationError, match="broadcast_id"):
        Broadcast(bad, "hi", ContentType.TEXT, (Target(TENANT, GROUP, CHANNEL),))


def test_content_rules() -> None:
    t = (Target(TENANT, GROUP, CHANNEL),)
    with pytest.raises(ValidationError, match=r"^content: must be non-empty"):
        Broadcast("b", "  ", ContentType.TEXT, t)
    with pytest.raises(ValidationError, match="at most 28672 bytes"):
        Broadcast("b", "é" * (MAX_CONTENT_BYTES // 2 + 1), ContentType.TEXT, t)
    Broadcast("b", "x" * MAX_CONTENT_BYTES, ContentType.TEXT, t)
    with pytest.raises(ValidationError, match="content_type: must be 'text' or 'html'"):
        ContentType.parse("content_type", "markdown")
    with pytest.raises(ValidationError, match=r"^targets: must name at least one"):
        Broadcast("b", "hi", ContentType.TEXT, ())


def test_wire_content_types_are_integers() -> None:
    assert ContentType.TEXT.wire == 0
    assert ContentType.HTML.wire == 1


def test_duplicate_targets_collapse_into_one_delivery() -> None:
    t = Target(TENANT, GROUP, CHANNEL)
    assert len(Broadcast("b", "hi", ContentType.TEXT, (t, t)).deliveries()) == 1


def test_message_round_trip_and_rejections() -> None:
    msg = DeliveryMessage(delivery_id("b", TENANT, GROUP, CHANNEL), "b", TENANT, GROUP, CHANNEL)
    assert DeliveryMessage.from_wire(msg.to_wire()) == msg
    assert DeliveryMessage.from_entry(msg.entry(12.5), "p1") == DeliveryMessage(
        msg.delivery_id, "b", TENANT, GROUP, CHANNEL, "p1", 12.5
    )
    wire = msg.to_wire()
    for bad, why in [
        ("garbage", "JSON object"),
        (wire | {"v": 2}, "unknown message version 2"),
        ({k: v for k, v in wire.items() if k != "delivery"}, "delivery"),
        (wire | {"extra": 1}, "unexpected message fields"),
        (wire | {"tenant": "x"}, "tenant"),
        (wire | {"channel": "19:a/b@thread.tacv2"}, "channel"),
        (wire | {"permit": 5}, "invalid permit"),
    ]:
        with pytest.raises(ContractError, match=why):
            DeliveryMessage.from_wire(bad)


def test_a_batch_keeps_its_good_deliveries_and_names_each_bad_one() -> None:
    msgs = [
        DeliveryMessage(
            delivery_id("b", TENANT, GROUP, f"19:c{i}@thread.tacv2"),
            "b",
            TENANT,
            GROUP,
            f"19:c{i}@thread.tacv2",
        )
        for i in range(3)
    ]
    assert batch_from_wire(batch_to_wire(msgs)) == (msgs, [])
    assert batch_from_wire(msgs[0].to_wire()) == ([msgs[0]], [])  # one delivery, unbatched
    good, bad = batch_from_wire([msgs[0].to_wire(), "garbage", msgs[2].to_wire() | {"v": 7}])
    assert good == [msgs[0]]
    assert [(raw, why.split(",")[0]) for raw, why in bad] == [
        ("garbage", "message must be a JSON object"),
        (msgs[2].to_wire() | {"v": 7}, "unknown message version 7"),
    ]
    for empty_or_huge in ([], [msgs[0].to_wire()] * (MAX_BATCH + 1)):
        good, bad = batch_from_wire(empty_or_huge)
        assert good == [] and len(bad) == 1
        assert f"a batch must hold 1 to {MAX_BATCH} messages" in bad[0][1]
    assert batch_from_wire("garbage")[0] == []
