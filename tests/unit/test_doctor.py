"""The pure parts of ``threadcast doctor``: masking, verdicts on sign-ins, the report's shape."""

from __future__ import annotations

import json

import pytest

from producer import doctor
from producer.doctor import Result, SignIn, Status

NOW = 1_800_000_000.0
GROUP = frozenset({"Group.ReadWrite.All"})


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:s3cret-pw@cache:6379/0", "redis://***@cache:6379/0"),
        (
            "at postgresql://app:pa@ss:word@db.internal/ledger.",
            "at postgresql://***@db.internal/ledger.",
        ),
        ("rediss://user@h/1 and https://h/x@y", "rediss://***@h/1 and https://h/x@y"),
        ("sqlite:////var/lib/threadcast.db", "sqlite:////var/lib/threadcast.db"),
    ],
)
def test_mask_urls(text: str, shown: str) -> None:
    assert doctor.mask_urls(text) == shown


def sign_in(**facts: object) -> SignIn:
    values: dict[str, object] = {
        "tenant": "t",
        "user": "u",
        "scopes": ("Group.ReadWrite.All",),
        "expires_on": NOW + 60,
        "refresh_token": True,
        "needs_sign_in": None,
        "now": NOW,
    }
    return SignIn(**(values | facts))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ({}, Status.OK),
        ({"expires_on": NOW - 60}, Status.OK),  # refreshed on next use
        ({"scopes": ("group.readwrite.all",)}, Status.OK),  # scopes compare case-blind
        ({"scopes": ("User.Read",)}, Status.FAIL),
        ({"refresh_token": False}, Status.WARN),
        ({"refresh_token": False, "expires_on": NOW - 1}, Status.FAIL),
        ({"refresh_token": False, "expires_on": None}, Status.FAIL),
        ({"needs_sign_in": "invalid_grant"}, Status.FAIL),
    ],
)
def test_sign_in_verdict(facts: dict[str, object], status: Status) -> None:
    assert doctor._verdict(sign_in(**facts), GROUP)[0] is status


def test_secret_settings_are_never_shown() -> None:
    assert doctor._secret_setting("token_cache_key") and doctor._secret_setting("api_keys")
    assert doctor._secret_setting("client_secret") and not doctor._secret_setting("http_timeout")


def test_render_folds_fine_tenants_and_counts_every_check() -> None:
    results = [
        doctor.ok("redis", "answers"),
        *(doctor.ok(f"tenant {n}", "fine") for n in range(3)),
        doctor.fail("tenant 9", "marked", "threadcast login --tenant 9"),
        doctor.warn("scheduler", "none", "start one"),
    ]
    folded = doctor.render(results).splitlines()
    assert folded[1] == (
        "ok    tenants: 3 signed in with the Graph scope and a refresh token (--verbose lists each)"
    )
    assert "FAIL  tenant 9: marked -> threadcast login --tenant 9" in folded
    assert folded[-1] == "doctor: 1 failed, 1 warnings, 4 ok: fix the FAIL lines before sending"
    assert len(doctor.render(results, verbose=True).splitlines()) == len(results) + 1
    report = json.loads(doctor.dumps(results))
    assert report["ok"] is False and report["counts"] == {"ok": 4, "warn": 1, "fail": 1}
    assert report["checks"][4] == {
        "name": "tenant 9",
        "status": "fail",
        "detail": "marked",
        "fix": "threadcast login --tenant 9",
    }


def test_a_broken_check_becomes_a_failure_line() -> None:
    def check_broken(_probe: doctor.Probe) -> Result:
        raise RuntimeError("boom")

    found = doctor._run(check_broken, None)  # type: ignore[arg-type]
    assert [(r.name, r.status) for r in found] == [("broken", Status.FAIL)]
    assert "RuntimeError: boom" in found[0].detail
