"""Tell a WebSub hub which feeds changed, so subscribers get them at once.

Only feeds whose bytes changed are announced (``hub.mode=publish``), in every
format (Atom, RSS and JSON Feed all name the hub). The POST goes through the one
HTTP module (``sources.fetch.post_form``). A hub that cannot be reached or that
refuses is a warning and never fails the run. Reads and writes no file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..layout import feed_url, is_announced
from ..sources.fetch import BlockingTransport, post_form

log = logging.getLogger("feeds")

#: Seconds for each phase of the POST (connecting, sending, waiting for the answer).
TIMEOUT = 10.0


def announce(hub: str, base_url: str, written: Sequence[str], *,
             transport: BlockingTransport | None = None) -> bool:
    """Announce the changed feed files (paths relative to the output folder); True if the hub took it."""
    urls = [feed_url(base_url, path) for path in written if is_announced(path)]
    if not urls:
        return True
    result = post_form(hub, {"hub.mode": "publish", "hub.url": urls}, timeout=TIMEOUT, transport=transport)
    if result.status is None:
        log.warning("websub: cannot reach the hub %s: %s", hub, result.error)
        return False
    if result.status >= 300:
        log.warning("websub: the hub %s answered HTTP %d", hub, result.status)
        return False
    log.info("websub: announced %d changed feeds to %s", len(urls), hub)
    return True
