"""Identity and dates of source-feed items (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from feeds.identity import Ledger, LedgerKey, id_mode, item_id, item_key, natural_item_id
from feeds.normalize.items import entry_from_item
from feeds.sources.parse import ParsedFeed, ParsedItem, parse_feed

from .httpserver import item, rss


def parsed(items: list[dict[str, str]]) -> ParsedFeed:
    return parse_feed(rss(items).encode(), {"content-type": "application/rss+xml"}, "https://f.example/feed")


def items_of(*specs: tuple[str | None, str | None, str]) -> list[ParsedItem]:
    return [ParsedItem(g, link, title, None, None, None, None, (), (), None, None, (), None, None)
            for g, link, title in specs]


def test_id_mode() -> None:
    assert id_mode(items_of(("a", "https://x/1", "A"), ("b", "https://x/2", "B"))) == "guid"
    # The same item listed twice is a duplicate, not a broken guid scheme.
    assert id_mode(items_of(("a", "https://x/1", "A"), ("a", "https://x/1", "A"))) == "guid"
    assert id_mode(items_of(("a", "https://x/1", "A"), ("a", "https://x/2", "B"))) == "link"
    assert id_mode(items_of((None, "https://x/1", "A"), ("b", "https://x/2", "B"))) == "link"
    assert id_mode(items_of(("a", "https://x/", "A"), ("a", "https://x/", "B"))) == "hash"


def test_keys_and_natural_ids() -> None:
    [a] = items_of(("urn:x:1", "https://x/1?utm_source=rss", "A"))
    assert item_key(a, "guid", None) == "guid:urn:x:1"
    assert natural_item_id(a, "guid", None) == "urn:x:1"
    assert item_key(a, "link", None) == "link:https://x/1"
    assert natural_item_id(a, "link", None) == "https://x/1"
    assert natural_item_id(a, "hash", None).startswith("urn:uuid:")
    [plain] = items_of(("1234", None, "B"))
    assert natural_item_id(plain, "guid", None).startswith("urn:uuid:")


def test_entry_from_item_cleans_and_dates() -> None:
    feed = parsed([item(1, description="&lt;p&gt;Hi &lt;script&gt;x()&lt;/script&gt;&lt;img src='/i.png'&gt;&lt;/p&gt;",
                        pubDate="2021-03-05 10:00:00")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    e = entry_from_item(feed.items[0], feed, entry_id="urn:x", source="s", feed_url="https://f.example/feed",
                        zone=ZoneInfo("Asia/Tokyo"), now=now, first_seen=now)
    assert e.published == datetime(2021, 3, 5, 1, 0, tzinfo=UTC)
    assert e.content is not None and "script" not in e.content
    assert 'src="https://site.example/i.png"' in e.content
    assert e.provenance[0].feed_title == "Test feed" and e.provenance[0].feed_url == "https://f.example/feed"


def test_item_id_gives_one_id_per_link() -> None:
    link = LedgerKey("link", "https://x/1")
    ledger = Ledger({LedgerKey("link", "https://x/known"): "urn:x:known"})
    assert item_id("urn:x:a", None, ledger, new=True) == "urn:x:a" and ledger.added() == {}
    # A new story whose link has no id yet names it.
    assert item_id("urn:x:a", "https://x/1", ledger, new=True) == "urn:x:a"
    assert ledger.added() == {link: "urn:x:a"}
    # The next new story with that link takes its id; a stored one keeps its own.
    assert item_id("urn:x:b", "https://x/1", ledger, new=True) == "urn:x:a"
    assert item_id("urn:x:c", "https://x/1", ledger, new=False) == "urn:x:c"
    assert item_id("urn:x:d", "https://x/known", ledger, new=True) == "urn:x:known"
    assert ledger.added() == {link: "urn:x:a"}


def test_a_ledger_draft_reads_through_and_keeps_its_additions_apart() -> None:
    known = LedgerKey("link", "https://x/known")
    ledger = Ledger({known: "urn:x:known"})
    draft = ledger.draft()
    assert draft.get(known) == "urn:x:known"
    draft.remember("urn:x:new", known, LedgerKey("link", "https://x/new"))
    assert draft.added() == {LedgerKey("link", "https://x/new"): "urn:x:new"}
    assert ledger.get(LedgerKey("link", "https://x/new")) is None and ledger.added() == {}
    ledger.remember("urn:x:first", LedgerKey("link", "https://x/new"))  # meanwhile, someone else
    ledger.learn(draft.added())
    assert ledger.get(LedgerKey("link", "https://x/new")) == "urn:x:first"
    assert len(ledger) == 2


def test_a_guid_that_is_no_uri_names_a_story_of_its_site_only() -> None:
    # Two sites' items both guid "1001" were one entry: the second story was in no feed at all.
    [a] = items_of(("1001", "https://one.example/a", "A"))
    [b] = items_of(("1001", "https://two.example/b", "B"))
    one = natural_item_id(a, "guid", "https://one.example/", scope="https://one.example/feed.xml")
    two = natural_item_id(b, "guid", "https://two.example/", scope="https://two.example/rss")
    assert one != two and one.startswith("urn:uuid:") and two.startswith("urn:uuid:")
    # Two feeds of one site (its category feeds) share its guids: the same story.
    assert natural_item_id(b, "guid", "https://one.example/", scope="https://one.example/other.xml") == one
    assert natural_item_id(b, "guid", "HTTP://ONE.example/news/", scope="x") == one
    # Without a site link, the feed's own address is the scope; a guid that is a URI is the id everywhere.
    assert natural_item_id(a, "guid", None, scope="https://one.example/feed.xml") != \
        natural_item_id(a, "guid", None, scope="https://two.example/feed.xml")
    [uri] = items_of(("tag:one.example,2024:1001", None, "C"))
    assert natural_item_id(uri, "guid", "https://one.example/", scope="a") == \
        natural_item_id(uri, "guid", "https://two.example/", scope="b") == "tag:one.example,2024:1001"
