"""Fetch the article pages of ``full_text`` sources and store their articles: the I/O half
of full text (``fulltext`` is the pure half).

Once a pass has stored its sources (``update``), each due source with ``full_text`` whose
fetch did not fail gets the article pages of the items that want one
(``Store.articles_wanted``: items of its latest listing with no article yet, whose link
changed, or whose page failed and is due again), at most ``limits.articles_per_fetch``
of them per fetch, newest first; the others wait for the next fetches. They go out in
batches, a few of each source in turn, and a source whose page timed out or could not
connect sends no more this pass (:data:`SOURCE_PAGES_PER_BATCH`). The pages are
asked for by the fetcher that fetches feeds (``fetch``): the same politeness per host,
timeouts, size cap and address checks (an article link is followed as a redirect from
the feed would be), and the source's headers and credentials to its own origin only.

A page's article (``fulltext.extract_article``) is stored, with the item's entry whose
content it becomes, in one transaction per source, so each page is fetched once, not on
every run. A page that fails in any way keeps the entry's summary (and the feed's own
content); the failure is one warning naming the URL, the first time, and the page is
asked for again only after a back-off (``fulltext.retry_delay``). Nothing here stops the
run: a failure of any kind is that page's, or that source's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from ..config import Config, Source
from ..store import ArticleRow, ArticleWanted, ItemRow, Store, entry_from_json, entry_to_json
from .decide import SourceOutcome, failure_text
from .fetch import Fetcher, FetchSettings, Transport
from .fulltext import (
    EXTRACTED_FACTOR,
    Article,
    article_content,
    digest_with_article,
    extract_article,
    extraction,
    retry_delay,
    with_article,
)
from .results import FetchRequest, FetchResult

log = logging.getLogger("feeds")

Fetch = Callable[[Sequence[FetchRequest]], list[FetchResult]]


@contextlib.contextmanager
def one_fetcher(settings: FetchSettings, transport: Transport | None = None) -> Iterator[Fetch]:
    """A :data:`Fetch` for batch after batch on one fetcher and one event loop: the pause
    after a request to a host holds from one batch to the next, and connections are kept."""
    with asyncio.Runner() as runner:
        fetcher = Fetcher(settings, transport)
        runner.run(fetcher.open())
        try:
            yield lambda requests: runner.run(fetcher.fetch_all(requests))
        finally:
            runner.run(fetcher.aclose())


def with_stored_articles(store: Store, config: Config, source: Source, rows: Sequence[ItemRow]) -> list[ItemRow]:
    """``rows`` (items of ``source`` about to be stored) with the articles already stored
    for them as their content: an item that changed upstream keeps its article, as long as
    its link and the source's extraction are the same."""
    if source.full_text is None or not rows:
        return list(rows)
    how = extraction(source.full_text)
    stored = store.load_articles(source.name, [r.ukey for r in rows])
    limits = config.fetch.limits_of(source)
    out = []
    for row in rows:
        article = stored.get(row.ukey)
        if article is not None and article.html is not None and article.link == row.link and article.how == how:
            entry = entry_from_json(row.data)
            applied = article_content(article.html, entry, remove=source.clean.remove,
                                      content_bytes=limits.content_bytes)
            if applied.html is not None:
                row = row._replace(data=entry_to_json(with_article(entry, applied.html)),
                                   digest=digest_with_article(row.digest, applied.html))
        out.append(row)
    return out


def _quote(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def _waited(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:g} d"
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


#: Article pages asked for at once: their bodies are in memory together until read.
PAGE_BATCH = 32
#: Pages of one source in one batch: a host that stops answering costs a pass at most this
#: many timeouts (its source's other pages wait for the next fetch).
SOURCE_PAGES_PER_BATCH = 4
#: Failures that say the host is not answering (or may not be asked), not that one page failed.
HOST_FAILURES = frozenset({"timeout", "connect", "dns", "throttled", "tls"})


class _Page:
    """One article page asked for: whose, which item, what is stored of it, the request."""

    __slots__ = ("request", "source", "wanted")

    def __init__(self, source: Source, wanted: ArticleWanted, request: FetchRequest) -> None:
        self.source = source
        self.wanted = wanted
        self.request = request


def _batches(per_source: Sequence[Sequence[_Page]], given_up: set[str]) -> Iterator[list[_Page]]:
    """The pages of every source in batches: up to :data:`SOURCE_PAGES_PER_BATCH` of each
    source in turn, so a batch asks many hosts at once rather than one host (one request at
    a time) many times. A source named in ``given_up`` (it may grow between batches) gets
    no more."""
    queues = [list(pages) for pages in per_source]
    while True:
        batch: list[_Page] = []
        for queue in queues:
            if queue and queue[0].source.name in given_up:
                queue.clear()
            take = min(SOURCE_PAGES_PER_BATCH, PAGE_BATCH - len(batch), len(queue))
            batch.extend(queue[:take])
            del queue[:take]
        if not batch:
            return
        yield batch


def update_articles(config: Config, store: Store, sources: Sequence[tuple[Source, FetchRequest]],
                    outcomes: Sequence[SourceOutcome], *, now: datetime, fetch: Fetch) -> list[SourceOutcome]:
    """Fetch and store the article pages the given sources want (each with the request its
    feed was fetched with: its pages are asked for with the same HTTP settings); the
    ``outcomes`` with what that brought (a note for each page that failed the first
    time, and the entries that took their article counted as changed when the fetch
    itself changed none)."""
    by_name = {o.name: i for i, o in enumerate(outcomes)}
    result = list(outcomes)
    stamp = now.timestamp()
    per_source: list[list[_Page]] = []
    for source, feed in sources:
        index = by_name.get(source.name)
        if source.full_text is None or index is None or outcomes[index].error:
            continue
        limit = config.fetch.limits_of(source).articles_per_fetch
        try:
            wanted = store.articles_wanted(source.name, how=extraction(source.full_text), now=stamp, limit=limit + 1)
        except Exception as exc:  # the store failing for one source is that source's problem
            log.debug("%s: choosing article pages failed", source.name, exc_info=True)
            result[index] = _noted(result[index], f"full text: {failure_text(exc)}")
            continue
        if len(wanted) > limit:
            wanted = wanted[:limit]
            if outcomes[index].new:  # said when new items make the wait, not on every fetch while it lasts
                waiting = (f"more items want their article page than {limit}; the others wait for the next "
                           "fetches (limits.articles_per_fetch)")
                log.warning("%s: %s", source.name, waiting)
                result[index] = _noted(result[index], waiting)
        per_source.append([_Page(source, w, replace(feed, url=w.link, etag=None, last_modified=None,
                                                    page_of=feed.url)) for w in wanted])
    done: dict[str, tuple[list[ArticleRow], list[tuple[str, str, str]], list[str]]] = {}
    given_up: set[str] = set()
    for batch in _batches(per_source, given_up):
        for page, answer in zip(batch, fetch([p.request for p in batch]), strict=True):
            if answer.failure is not None and answer.failure.kind in HOST_FAILURES:
                given_up.add(page.source.name)  # its host is not answering: its other pages wait
            rows, entries, notes = done.setdefault(page.source.name, ([], [], []))
            row, content, note = _settle(config, page, answer, stamp)
            rows.append(row)
            if content is not None:
                entries.append(content)
            if note is not None:
                notes.append(note)
    for name, (rows, entries, notes) in done.items():
        index = by_name[name]
        try:
            store.save_articles(name, rows, entries)
        except Exception as exc:
            log.debug("%s: storing articles failed", name, exc_info=True)
            notes = [f"full text: the articles could not be stored ({failure_text(exc)})"]
            entries = []
        outcome = result[index]
        for note in notes:
            log.warning("%s: %s", name, note)
            outcome = _noted(outcome, note)
        if entries and not (outcome.new or outcome.changed):
            outcome = replace(outcome, changed=len(entries))
        result[index] = outcome
    return result


def _noted(outcome: SourceOutcome, note: str) -> SourceOutcome:
    return replace(outcome, notes=(*outcome.notes, note))


def _settle(config: Config, page: _Page, answer: FetchResult, stamp: float
            ) -> tuple[ArticleRow, tuple[str, str, str] | None, str | None]:
    """What one page's answer means: the article row to store, the item's new (ukey, entry
    data, digest) (None: unchanged), and the note to report (None: nothing to say)."""
    source, wanted = page.source, page.wanted
    assert source.full_text is not None
    how = extraction(source.full_text)
    limits = config.fetch.limits_of(source)
    data = None
    try:
        if answer.failure is not None:
            article = Article(None, answer.failure.message)
        elif answer.body is None:
            article = Article(None, f"HTTP {answer.status} without a page")
        else:
            article = extract_article(answer.body, answer.headers, answer.final_url, source.full_text,
                                      max_chars=limits.content_bytes * EXTRACTED_FACTOR)
        if article.html is not None:
            entry = entry_from_json(wanted.data)
            applied = article_content(article.html, entry, remove=source.clean.remove,
                                      content_bytes=limits.content_bytes)
            if applied.html is None:
                article = Article(None, applied.problem)
            else:
                data = (wanted.ukey, entry_to_json(with_article(entry, applied.html)),
                        digest_with_article(wanted.digest, applied.html))
    except Exception as exc:  # whatever a page does, it is that page's failure
        log.debug("%s: reading the article page %s failed", source.name, wanted.link, exc_info=True)
        article, data = Article(None, failure_text(exc)), None
    if article.html is not None and data is not None:
        return ArticleRow(source.name, wanted.ukey, wanted.link, how, article.html, None, 0, None, stamp), data, None
    before = wanted.stored
    again = before is not None and before.html is None and before.link == wanted.link and before.how == how
    failures = (before.failures if again and before is not None else 0) + 1
    delay = retry_delay(failures, config.fetch.max_backoff)
    problem = article.problem or "no article"
    row = ArticleRow(source.name, wanted.ukey, wanted.link, how, None, problem, failures, stamp + delay, stamp)
    if failures > 1:
        log.info("%s: full text of %s failed again: %s", source.name, wanted.link, problem)
        return row, None, None
    note = (f"full text of {_quote(wanted.link)} failed: {problem}; the entry keeps its summary (asked again in "
            f"{_waited(delay)})")
    return row, None, note
