"""Tell a WebSub hub which feeds changed, so subscribers get them at once.

Only feeds whose bytes changed are announced (``hub.mode=publish``). A hub that
cannot be reached is reported and does not fail the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from ..layout import feed_url, is_announced
from ..sources.fetch import USER_AGENT

log = logging.getLogger("feeds")


def announce(hub: str, base_url: str, written: Sequence[str], *,
             transport: httpx.BaseTransport | None = None) -> bool:
    """Announce the changed feed files (paths relative to the output folder); True if the hub took it."""
    urls = [feed_url(base_url, path) for path in written if is_announced(path)]
    if not urls:
        return True
    try:
        with httpx.Client(timeout=10, headers={"User-Agent": USER_AGENT}, transport=transport,
                          trust_env=False) as client:
            response = client.post(hub, data={"hub.mode": "publish", "hub.url": urls})
    except httpx.HTTPError as exc:
        log.warning("websub: cannot reach the hub %s: %s", hub, exc)
        return False
    if response.status_code >= 300:
        log.warning("websub: the hub %s answered HTTP %d", hub, response.status_code)
        return False
    log.info("websub: announced %d changed feeds to %s", len(urls), hub)
    return True
