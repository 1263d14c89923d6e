"""Cache keys: which settings each stage's cached results were made with.

Each key covers only the settings its stage reads, so editing any other
setting (``schedule.*``, ``fetch.*``, a source's ``every``) keeps the cache.
Leaving out of a key a setting that changes what the stage makes would publish
stale output: ``tests/test_cache_keys.py`` edits each setting and compares an
incremental run with a cold one.

Pure: config in, strings out; touches no file, network, database or clock.
"""

from __future__ import annotations

import hashlib
import json

from .. import __version__
from ..config import Config, Posts, Source

#: Bump when parsing or rendering changes what a cached record would hold.
CACHE_VERSION = f"{__version__}/2"

#: Bump when normalizing items changes, so stored items are rebuilt from the next fetch.
ITEM_VERSION = "3"
#: A source's settings that only say when or whether it is fetched, not what its items become.
SCHEDULE_ONLY_SOURCE_KEYS = frozenset({"every", "enabled", "optional"})
#: Source keys that only say how it is asked for (its entries are the same whatever they are).
FETCH_ONLY_SOURCE_KEYS = frozenset({"headers", "user_agent", "auth", "tls_verify"})
#: Caps that only say how much is fetched at once, not what an item's entry becomes.
FETCH_ONLY_LIMITS = frozenset({"articles_per_fetch"})
#: Source keys that choose which of its items are published, not what they become.
FILTER_SOURCE_KEYS = frozenset({"include", "exclude"})
#: What a post's front matter is normalized with (besides its posts input's permalink and tags).
POST_SETTINGS = ("site.timezone", "site.base_url", "site.link")
#: Everything that can change a byte of a rendered feed or page, given its entries.
FEED_SETTINGS = ("site", "output", "posts", "feeds", "queries", "tags", "categories", "websub")


def _hash(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def post_key(config: Config, folder: Posts) -> str:
    """The key of a cached post row (its normalized front matter) of ``folder``."""
    return _hash("post", config.settings_key(*POST_SETTINGS, version=CACHE_VERSION), folder.permalink,
                 folder.tags)


def content_key(config: Config, folder: Posts) -> str:
    """The key of a post's cleaned content and summary: its links resolve against the post's
    own link (made as its front matter is), cleaned by its input's selectors."""
    return _hash("content", post_key(config, folder), folder.clean.remove,
                 config.settings_key("output.summary_length", version=CACHE_VERSION))


def feed_key(config: Config) -> str:
    """The settings part of every feed's signature."""
    return config.settings_key(*FEED_SETTINGS, version=CACHE_VERSION)


def items_key(config: Config, source: Source) -> str:
    """What the entries of ``source``'s items are made with: the settings the source-update
    decider reads, and no other (editing ``schedule.*``, ``fetch.*`` timeouts or ``every``
    keeps them)."""
    own = source.model_dump(mode="json", exclude=set(SCHEDULE_ONLY_SOURCE_KEYS | FETCH_ONLY_SOURCE_KEYS
                                                     | FILTER_SOURCE_KEYS))
    if own.get("full_text") is None:  # the key a source without full text had before there was one
        del own["full_text"]
    return _hash(ITEM_VERSION, config.settings_key("site.timezone", "output.summary_length"),
                 config.fetch.limits_of(source).model_dump(mode="json", exclude=set(FETCH_ONLY_LIMITS)), own)


def snapshot_key(config: Config) -> str:
    """The settings part of the nothing-changed snapshot: what the feeds are made of, and
    which sources are read (a source's ``every`` only says when it is fetched)."""
    sources = [source.model_dump(mode="json", exclude={"every"}) for source in config.sources]
    return _hash("snapshot", feed_key(config), sources)
