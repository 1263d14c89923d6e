"""Which network addresses a redirect may lead the fetcher to.

Pure decisions, no I/O: the fetcher resolves host names (getaddrinfo) and asks
here. A source configured on an address is trusted with that address's class
(a source on 127.0.0.1 may redirect to another loopback port; one on 10.0.0.5
to another private address). A redirect from a public address may lead only to
public addresses: a feed on the internet must not make the aggregator fetch
from the operator's own machine or network (server-side request forgery).

Classes: "public", "loopback", "private" (RFC 1918, shared 100.64/10, IPv6
unique local fc00::/7), "link-local", "multicast", "unspecified" and
"reserved" (every other address that is not globally routable). IPv6 forms
that carry an IPv4 address (::ffff:127.0.0.1, ::127.0.0.1, 6to4, Teredo,
NAT64 64:ff9b::/96) are judged by the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Classify = Callable[[IPAddress], str]

PUBLIC = "public"

_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def parse_address(text: str) -> IPAddress | None:
    """An IP address from getaddrinfo's answer (an IPv6 zone ``%eth0`` dropped), or None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_class(ip: IPAddress) -> str:
    """The class of ``ip``: "public" or the kind of non-public address it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_class(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip in net for net in _PRIVATE if net.version == ip.version):
        return "private"
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local  # fec0::/10, deprecated
    if site_local or ip.is_reserved or ip.is_private or not ip.is_global:
        return "reserved"
    return PUBLIC


def classes_of(addresses: Iterable[IPAddress], classify: Classify = address_class) -> frozenset[str]:
    return frozenset(classify(ip) for ip in addresses)


def trusted_classes(origin: frozenset[str]) -> frozenset[str]:
    """The non-public classes a redirect chain starting at ``origin`` may lead to."""
    return origin - {PUBLIC}


def refusal(trusted: frozenset[str], addresses: Iterable[IPAddress], classify: Classify = address_class) -> str | None:
    """Why a redirect to ``addresses`` is refused (None: it is allowed).

    ``trusted`` holds the non-public classes the chain may still reach; every
    address the target resolves to must be public or of a trusted class.
    """
    for ip in addresses:
        kind = classify(ip)
        if kind != PUBLIC and kind not in trusted:
            return f"redirect to a {kind} address ({ip}) refused"
    return None


def after_hop(trusted: frozenset[str], hop: frozenset[str]) -> frozenset[str]:
    """What stays trusted after a hop to addresses of the classes ``hop``.

    Once a public server answered, it chose where the chain goes next: from
    then on only public addresses are allowed.
    """
    return frozenset() if PUBLIC in hop else trusted
