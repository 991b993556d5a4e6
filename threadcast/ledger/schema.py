"""The ledger's tables as the code uses them now (migrations.py builds them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from threadcast.ledger.types import UTCDateTime

metadata = MetaData()

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER keys.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("content_type", String(8), nullable=False),
    Column("source", String(200), nullable=False),
    Column("send_at", UTCDateTime),
    Column("target_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("cancelled_at", UTCDateTime),
    # v8: everything of the message beside its body (MessageParts.to_json(); NULL: body only),
    # and whether content and subject are templates filled in per delivery.
    Column("parts", Text),
    Column("personal", Boolean, nullable=False, server_default=false()),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("tenant_id", String(36), nullable=False),
    Column("group_id", String(36), nullable=False),
    Column("channel_id", String(256), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("next_attempt_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error_code", String(200)),
    Column("last_error_message", Text),
    Column("last_request_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("attempt_base", Integer, nullable=False, server_default="0"),
    Column("message_id", String(200)),
    Column("variables", Text),  # v8: JSON of its target's variables (personal broadcasts only)
    Index("ix_deliveries_broadcast_state", "broadcast_id", "state"),
    Index("ix_deliveries_state_tenant", "state", "tenant_id"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), ForeignKey("deliveries.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("client_request_id", String(36), nullable=False),
    Column("outcome", String(16)),
    Column("http_status", Integer),
    Column("request_id", String(64)),
    Column("error_code", String(200)),
    Column("error_message", Text),
    Column("retry_after", Float),
    Column("latency_ms", Float),
    Column("message_id", String(200)),
    Column("endpoint", String(32)),  # v7: chatthreads | channel-messages
    Index("ix_attempts_delivery", "delivery_id"),
)

# Facts about the whole deployment that must outlive Redis (v7): the endpoint switch.
deployment = Table(
    "deployment",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

token_caches = Table(
    "token_caches",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

rejected_messages = Table(
    "rejected_messages",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("message", Text, nullable=False),
)

# Scheduling (v4): recurring schedules, their occurrences, releases of one-off broadcasts.
Index("ix_broadcasts_send_at", broadcasts.c.send_at)
# Listing broadcasts newest first (v10).
Index("ix_broadcasts_created", broadcasts.c.created_at, broadcasts.c.id)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("content", Text, nullable=False),
    Column("content_type", String(8), nullable=False),
    Column("targets", Text, nullable=False),  # JSON list of validated targets
    Column("target_count", Integer, nullable=False),
    Column("source", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # active, paused, deleted
    Column("grace_seconds", Integer, nullable=False),
    # Every occurrence at or before this instant has been dealt with (or fell in a pause).
    Column("checked_through", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("parts", Text),  # v8: as broadcasts.parts, for each broadcast it makes
    Column("personal", Boolean, nullable=False, server_default=false()),
    Index("ix_schedules_state", "state"),
)

schedule_occurrences = Table(
    "schedule_occurrences",
    metadata,
    Column("schedule_id", String(64), ForeignKey("schedules.id"), primary_key=True),
    Column("occurrence_at", UTCDateTime, primary_key=True),
    Column("state", String(16), nullable=False),  # released, late, skipped, missed, failed
    Column("broadcast_id", String(128)),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("released_at", UTCDateTime),  # its broadcast exists and was published
    Column("note", Text),
)

broadcast_releases = Table(
    "broadcast_releases",
    metadata,
    Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), primary_key=True),
    Column("due_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # released, late, missed
    Column("released_at", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime),  # None: queued in the ledger, not yet published
    Index("ix_broadcast_releases_published", "published_at"),
)

# Delivery pages of the HTTP API (v5): keyset pagination on seq within a broadcast.
Index("ix_deliveries_broadcast_seq", deliveries.c.broadcast_id, deliveries.c.seq)

# Saved audiences (threadcast audience save): a name -> audience specs and explicit targets,
# as JSON, resolved through Graph when a broadcast uses it.
audiences = Table(
    "audiences",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Edits and recalls of a sent broadcast (v11): one row per change, the state of each of the
# broadcast's deliveries in it, and every PATCH or softDelete made.
broadcast_changes = Table(
    "broadcast_changes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), nullable=False),
    Column("number", Integer, nullable=False),  # 1, 2, ... per broadcast
    Column("kind", String(8), nullable=False),  # edit | recall
    # An edit's whole new message (as broadcasts: content, type, parts, personal).
    Column("content", Text),
    Column("content_type", String(8)),
    Column("parts", Text),
    Column("personal", Boolean, nullable=False, server_default=false()),
    Column("source", String(200), nullable=False),
    Column("state", String(16), nullable=False),  # running | done | superseded
    Column("runner", String(200)),  # the worker running it now, until lease_until
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("ux_broadcast_changes_number", "broadcast_id", "number", unique=True),
    Index("ix_broadcast_changes_state", "state"),
)

change_deliveries = Table(
    "change_deliveries",
    metadata,
    Column("change_id", String(36), ForeignKey("broadcast_changes.id"), primary_key=True),
    Column("delivery_id", String(36), ForeignKey("deliveries.id"), primary_key=True),
    Column("state", String(16), nullable=False),  # threadcast.ledger.changes.ChangeState
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error_code", String(200)),
    Column("last_error_message", Text),
    Column("last_request_id", String(64)),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_change_deliveries_state", "change_id", "state"),
)

change_attempts = Table(
    "change_attempts",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("change_id", String(36), nullable=False),
    Column("delivery_id", String(36), nullable=False),
    Column("number", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("client_request_id", String(36), nullable=False),
    Column("outcome", String(16)),
    Column("http_status", Integer),
    Column("request_id", String(64)),
    Column("error_code", String(200)),
    Column("error_message", Text),
    Column("retry_after", Float),
    Column("latency_ms", Float),
    Index("ix_change_attempts_delivery", "change_id", "delivery_id"),
)

# Signed webhook events (v12, docs/WEBHOOKS.md): each event once (unique per type and
# subject), its delivery to each endpoint subscribed when it was recorded, every attempt, each
# endpoint's failure streak and pause; which broadcasts are watched until they settle, which
# tenants wait for a sign-in now (one event per such episode).
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", String(40), primary_key=True),  # the webhook-id header, on every attempt
    Column("type", String(40), nullable=False),
    Column("subject", String(300), nullable=False),  # a broadcast id, tenant@since, ...
    Column("payload", Text, nullable=False),  # the event's data, JSON
    Column("created_at", UTCDateTime, nullable=False),
    Index("ux_webhook_events_subject", "type", "subject", unique=True),
    Index("ix_webhook_events_created", "created_at", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("event_id", String(40), ForeignKey("webhook_events.id"), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("state", String(16), nullable=False),  # pending | delivered | failed (given up)
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("last_attempt_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhook_deliveries_due", "endpoint", "state", "next_attempt_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),  # delivered | failed | given_up
    Column("http_status", Integer),
    Column("error", Text),
    Column("latency_ms", Float),
    Index("ix_webhook_attempts_delivery", "event_id", "endpoint"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("failing_since", UTCDateTime),
    Column("paused_at", UTCDateTime),
    Column("pause_reason", Text),
    Column("last_attempt_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

webhook_broadcasts = Table(
    "webhook_broadcasts",
    metadata,
    Column("broadcast_id", String(128), ForeignKey("broadcasts.id"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),  # the broadcast's
    Column("open", Boolean, nullable=False),  # not settled (and announced) yet
    Column("settled_at", UTCDateTime),
    Index("ix_webhook_broadcasts_open", "open", "broadcast_id"),
    Index("ix_webhook_broadcasts_created", "created_at"),
)

webhook_waits = Table(
    "webhook_waits",
    metadata,
    Column("tenant_id", String(36), primary_key=True),
    Column("since", UTCDateTime, nullable=False),
    Column("event_id", String(40), nullable=False),
)

# Missed occurrences, found without reading every occurrence ever recorded (v12).
Index(
    "ix_schedule_occurrences_state",
    schedule_occurrences.c.state,
    schedule_occurrences.c.recorded_at,
)
