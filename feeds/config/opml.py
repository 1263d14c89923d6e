"""Sources from OPML subscription lists (``sources_opml:``), as a feed reader exports them.

Reads the OPML files the config names and nothing else. Each file must be well-formed
XML whose root is ``<opml>`` (checked with lxml, which refuses entities and never reaches
the network); its outlines are then read with listparser. Every outline with an
``xmlUrl`` is a source, tagged with the folder outlines around it (each level a tag) and
the outline's own ``category`` paths. The same feed twice (its URL normalised: scheme and
host in lower case, no default port, no fragment) is one source with the tags of both.

Names come from the outline's title (else the URL's host and path); names that clash,
with each other or with a source of the config, are made unique from what each source
is (its host, then a hash of its URL), never from where it sits in the file, so adding
or moving a subscription never renames another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lxml import etree

from ..errors import ConfigError

#: Longest source name (as ``Source.name``).
NAME_CHARS = 200


@dataclass
class Subscription:
    """One feed of an OPML file: its title, URL (as written), tags, and where it was read."""

    title: str
    url: str
    file: str
    tags: list[str] = field(default_factory=list)


def normal_url(url: str) -> str:
    """``url`` as compared for sameness: scheme and host in lower case, no default port,
    no fragment, an empty path as ``/``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def read_opml(path: Path, shown: str) -> list[Subscription]:
    """The subscriptions of the OPML file at ``path`` (``shown`` in messages); a
    :class:`ConfigError` naming the file when it is missing, unreadable or not OPML."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("OPML file not found (sources_opml)", where=shown) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the OPML file (sources_opml): {exc.strerror or exc}", where=shown) from None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"not well-formed OPML: {exc.msg}", where=shown, line=exc.lineno or None) from None
    top = root.sourceline if isinstance(root.sourceline, int) else None
    if not isinstance(root.tag, str) or etree.QName(root).localname.lower() != "opml":
        raise ConfigError(f"not an OPML file (its root element is <{etree.QName(root).localname}>, not <opml>)",
                          where=shown, line=top)
    if root.find("body") is None:
        raise ConfigError("not an OPML file (no <body>)", where=shown, line=top)
    import listparser  # here: it loads requests, which a config without OPML files never needs

    parsed = listparser.parse(data)  # bytes: listparser fetches nothing
    if parsed.get("bozo") and parsed.get("bozo_exception") is not None:
        raise ConfigError(f"unreadable OPML: {_line(str(parsed['bozo_exception']))}", where=shown)
    found = []
    for feed in parsed.get("feeds", []):
        url = _line(str(feed.get("url") or ""))
        if not url:
            continue
        tags: list[str] = []
        for path_of_folders in feed.get("categories", []):
            for folder in path_of_folders:
                folder = _line(str(folder))
                if folder and folder.casefold() not in (t.casefold() for t in tags):
                    tags.append(folder)
        found.append(Subscription(_line(str(feed.get("title") or "")), url, shown, tags))
    return found


def _fallback(url: str) -> str:
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/") or url


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _cut(name: str, suffix: str = "") -> str:
    return name[:NAME_CHARS - len(suffix)].rstrip() + suffix


def merged(subscriptions: Iterable[Subscription], taken: Iterable[str], known_urls: Iterable[str]
           ) -> list[tuple[str, Subscription]]:
    """Each distinct subscription (by normalised URL, not one the config has already) with
    its unique name: (name, subscription), in the order the files list them."""
    known = {normal_url(u) for u in known_urls}
    by_url: dict[str, Subscription] = {}
    for sub in subscriptions:
        key = normal_url(sub.url)
        if key in known:
            continue  # the config's own source wins
        first = by_url.get(key)
        if first is None:
            by_url[key] = Subscription(sub.title, sub.url, sub.file, list(sub.tags))
            continue
        first.title = first.title or sub.title
        first.tags += [t for t in sub.tags if t.casefold() not in (o.casefold() for o in first.tags)]
    reserved = set(taken)
    subs = list(by_url.items())

    def attempts(key: str, sub: Subscription) -> Sequence[str]:
        base = _cut(sub.title or _fallback(sub.url))
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        steps = [base]
        if sub.title:
            steps.append(_cut(base, f" ({_host(sub.url)})"))
        steps.append(_cut(base, f" ({digest})"))
        return steps

    names: dict[str, str] = {}
    pending = dict(subs)
    level = 0
    while pending:
        wanted: dict[str, list[str]] = {}
        for key, sub in pending.items():
            steps = attempts(key, sub)
            wanted.setdefault(steps[min(level, len(steps) - 1)], []).append(key)
        for name, keys in wanted.items():
            if len(keys) == 1 and name not in reserved:
                names[keys[0]] = name
            elif all(level >= len(attempts(k, pending[k])) - 1 for k in keys):  # nothing left to try
                for k in keys:
                    names[k] = _cut(name, f" {hashlib.sha1(k.encode()).hexdigest()}")
            else:
                continue
            for k in keys:
                reserved.add(names[k])
                del pending[k]
        level += 1
    return [(names[key], sub) for key, sub in subs]
