"""What the api-server's guards and the sealed triggerer share: the deployment's trigger
allow-list and the HTTP form of a refusal.

Delivered by airflow-foundation into $AIRFLOW_HOME/config (on sys.path in every component, and
beside foundation_sealed.py, which runs from there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable

TRIGGERS_ENV = "FOUNDATION_TRIGGERS"  # JSON list of the exact classpaths tasks may defer to


def allowed_triggers() -> frozenset[str]:
    """The classpaths tasks may defer to; none if the list is missing or unreadable."""
    try:
        listed = json.loads(os.environ.get(TRIGGERS_ENV, "[]"))
    except ValueError:
        return frozenset()
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(c for c in listed if isinstance(c, str))


async def send_refusal(send: Callable[[dict], Awaitable[None]], message: str) -> None:
    """Answer with HTTP 403 `{"detail": {"reason": "foundation", "message": ...}}`."""
    payload = json.dumps({"detail": {"reason": "foundation", "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(payload)),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
