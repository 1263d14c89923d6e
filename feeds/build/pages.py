"""What the front door (index.html, feeds.opml) and the feed pages list of each feed.

Pure: config, plans and stories in, ``Listing`` and ``Group`` records out.
Touches no file, network, database or clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import Config
from ..layout import FORMATS, LINK_TYPES, feed_file, feed_url, href
from ..render.pages import Group, Link, Listing, newest_label
from .group import FeedPlan
from .heads import feed_titles
from .stories import Story


def listing(config: Config, plan: FeedPlan, stories: Mapping[str, Story], absolute: bool = False) -> Listing:
    """One feed as a listing: its links (relative to the output folder, or ``absolute``),
    its newest entry's date, its page."""
    site = config.site
    formats = plan.policy.formats or []
    links = tuple(Link(LINK_TYPES[f].label, LINK_TYPES[f].media_type,
                       feed_url(site.base_url, feed_file(plan.stem, f)) if absolute
                       else href(feed_file(plan.stem, f))) for f in formats)
    xml_format = next((f for f in FORMATS if f in formats), None)
    newest = stories[plan.entry_ids[0]].published.astimezone(config.zone) if plan.entry_ids else None
    name = plan.term.name if plan.term else "All entries"
    page = href(feed_file(plan.stem, "html")) if config.output.pages else None
    return Listing(plan.kind, name, feed_titles(config, plan)[0], plan.total, newest_label(newest), links,
                   feed_url(site.base_url, feed_file(plan.stem, xml_format)) if xml_format else None, page)


def front_door(config: Config, plans: Sequence[FeedPlan], stories: Mapping[str, Story]) -> tuple[Listing, list[Group]]:
    """The all-entries feed's listing, and the groups of topic (if there are queries), tag
    and category feeds."""
    main = listing(config, plans[0], stories)
    topics = [Group("Topics", tuple(listing(config, p, stories) for p in plans if p.kind == "query"))]
    groups = [*(topics if config.queries else []),
              Group("Tags", tuple(listing(config, p, stories) for p in plans if p.kind == "tag")),
              Group("Categories", tuple(listing(config, p, stories) for p in plans if p.kind == "category"))]
    return main, groups
