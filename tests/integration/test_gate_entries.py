"""An entry the keeper cannot read (a newer version's, or damaged) leaves the gate without
costing its neighbours their release, and is reported with the reason."""

from __future__ import annotations

import json

import redis

from tests.integration.gates import gate_maker, guid, to
from threadcast.dispatch import keys


def test_an_unreadable_entry_is_set_aside_and_the_rest_is_released(
    clean_redis: redis.Redis,
) -> None:
    gate = gate_maker(clean_redis)(team=10, channel=10, tenant=10)
    tenant, team = guid(), guid()
    first, second = to(tenant, team, "19:a@thread.tacv2"), to(tenant, team, "19:b@thread.tacv2")
    assert gate.enqueue([first]) == 1
    newer = json.loads(first.entry(0.0)) | {"v": 2, "d": guid()}
    clean_redis.rpush(keys.queue(tenant, team), json.dumps(newer))
    assert gate.enqueue([second]) == 1

    release = gate.release(10)

    assert [m.delivery_id for m in release.messages] == [first.delivery_id, second.delivery_id]
    [(entry, why)] = release.unreadable
    assert json.loads(entry)["d"] == newer["d"]
    assert "unknown gate entry version 2" in why
    assert clean_redis.llen(keys.queue(tenant, team)) == 0
