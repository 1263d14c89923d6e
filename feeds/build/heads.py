"""Feed heads: the title, description, links and limits of each feed file.

Pure: config and the feed's plan in, a ``FeedHead`` out. Touches no file,
network, database or clock.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..config import Config
from ..layout import FORMATS, STATUS_ATOM, FileFormat, archive_stem, feed_file, feed_url, stylesheet_href
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
    elif plan.kind == "query":
        title, description = f"{plan.term.name} — {site.title}", f"Entries about {plan.term.name}"
    else:
        title, description = (f"{plan.term.name} — {site.title}",
                              f"Entries in the category {plan.term.name}")
    name = plan.term.name if plan.term else site.title
    if policy.title:
        title = policy.title.replace("{name}", name).replace("{site}", site.title)
    if policy.description:
        description = policy.description.replace("{name}", name).replace("{site}", site.title)
    return title, description


def archive_links(config: Config, plan: FeedPlan, fmt: FileFormat, page: int | None) -> tuple[tuple[str, str], ...]:
    """The RFC 5005 links of the feed of ``plan`` in ``fmt`` (of its archive page ``page``, or
    of the current feed): the current feed links its newest page (``prev-archive``); a page
    links the current feed, the page before it and the page after it. The page after the
    newest is named before it is cut, so that no page ever has to be written again."""
    if not config.output.archive or fmt not in FORMATS:
        return ()
    base = config.site.base_url

    def page_url(number: int) -> str:
        return feed_url(base, feed_file(archive_stem(plan.stem, number), fmt))

    if page is None:
        return (("prev-archive", page_url(len(plan.pages))),) if plan.pages else ()
    links = [("current", feed_url(base, feed_file(plan.stem, fmt)))]
    if page > 1:
        links.append(("prev-archive", page_url(page - 1)))
    links.append(("next-archive", page_url(page + 1)))
    return tuple(links)


def feed_head(config: Config, plan: FeedPlan, relative: str, fmt: FileFormat | None = None,
              page: int | None = None) -> FeedHead:
    """The head of the feed file at ``relative`` (a path in the output folder) for ``plan``:
    in ``fmt``, the current feed or its archive page ``page``."""
    site, output = config.site, config.output
    title, description = feed_titles(config, plan)
    if page is not None:
        title, description = f"{title} (archive, page {page})", f"{description}: archive page {page}"
    return FeedHead(title=title, description=description, self_url=feed_url(site.base_url, relative),
                    home_url=site.link or site.base_url, language=site.language,
                    author=site.author or site.title, hub=config.websub.hub if page is None else None,
                    stylesheet=stylesheet_href(relative) if output.stylesheet else None,
                    full_content=plan.policy.content != "summary", max_bytes=output.max_bytes,
                    max_entry_bytes=output.max_entry_bytes,
                    archive_links=archive_links(config, plan, fmt, page) if fmt is not None else (),
                    archive_page=page is not None)


def status_head(config: Config) -> FeedHead:
    """The head of the operator's health feed. With no problem the feed has no date of
    its own: a fixed one keeps it byte-stable."""
    site = config.site
    return FeedHead(title=f"{site.title}: source health", description="One entry per source problem",
                    self_url=feed_url(site.base_url, STATUS_ATOM), home_url=site.link or site.base_url,
                    language=None, author=site.author or site.title, empty_updated=HEALTHY_SINCE,
                    max_bytes=config.output.max_bytes, max_entry_bytes=config.output.max_entry_bytes)
