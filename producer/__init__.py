"""The producer side: what callers touch to send broadcasts.

from producer import Producer

with Producer() as producer:          # settings from THREADCAST_* / .env
    result = producer.send(
        "<h1>Maintenance tonight</h1>",
        [{"tenant": "…", "group": "…", "channel": "19:…@thread.tacv2"}],
        content_type="html",
    )
print(result.broadcast_id)
"""

from __future__ import annotations

from producer.client import Producer, SendResult
from threadcast.contract import ContentType, Target

__all__ = ["ContentType", "Producer", "SendResult", "Target"]
