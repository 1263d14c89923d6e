"""Feed heads: the title, description, links and limits of each feed file.

Pure: config and the feed's plan in, a ``FeedHead`` out. Touches no file,
network, database or clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..config import Config
from ..layout import STATUS_ATOM, feed_url, stylesheet_href
from ..render.feed import FeedHead
from .group import FeedPlan

#: The date of a health feed with no problem in it (a plausible, fixed one).
HEALTHY_SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def feed_titles(config: Config, plan: FeedPlan) -> tuple[str, str]:
    """A feed's title and description: the policy's patterns, else the defaults per kind."""
    site, policy = config.site, plan.policy
    if plan.term is None:
        title, description = site.title, site.description or f"All entries of {site.title}"
    elif plan.kind == "tag":
        title, description = f"{plan.term.name} — {site.title}", f"Entries tagged {plan.term.name}"
    else:
        title, description = (f"{plan.term.name} — {site.title}",
                              f"Entries in the category {plan.term.name}")
    name = plan.term.name if plan.term else site.title
    if policy.title:
        title = policy.title.replace("{name}", name).replace("{site}", site.title)
    if policy.description:
        description = policy.description.replace("{name}", name).replace("{site}", site.title)
    return title, description


def feed_head(config: Config, plan: FeedPlan, relative: str) -> FeedHead:
    """The head of the feed file at ``relative`` (a path in the output folder) for ``plan``."""
    site, output = config.site, config.output
    title, description = feed_titles(config, plan)
    return FeedHead(title=title, description=description, self_url=feed_url(site.base_url, relative),
                    home_url=site.link or site.base_url, language=site.language,
                    author=site.author or site.title, hub=config.websub.hub,
                    stylesheet=stylesheet_href(relative) if output.stylesheet else None,
                    full_content=plan.policy.content != "summary", max_bytes=output.max_bytes,
                    max_entry_bytes=output.max_entry_bytes)


def status_head(config: Config) -> FeedHead:
    """The head of the operator's health feed. With no problem the feed has no date of
    its own: a fixed one keeps it byte-stable."""
    site = config.site
    return FeedHead(title=f"{site.title}: source health", description="One entry per source problem",
                    self_url=feed_url(site.base_url, STATUS_ATOM), home_url=site.link or site.base_url,
                    language=None, author=site.author or site.title, empty_updated=HEALTHY_SINCE,
                    max_bytes=config.output.max_bytes, max_entry_bytes=config.output.max_entry_bytes)
