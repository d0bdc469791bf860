"""Where an outbound URL really points: strict URL parsing and address classes.

Refused outright, before any DNS query (each with the rule named in brackets):

- schemes other than ``http``/``https`` [``url:scheme``] — ``file:``, ``gopher:``, ``ftp:``, ``dict:``…;
- user info in the URL (``user:pass@``, ``allowed.test@127.0.0.1``) [``url:userinfo``];
- backslashes, whitespace, control characters, percent-encoded or empty hosts [``url:invalid``];
- IPv4 in any spelling but the canonical dotted quad — decimal ``2130706433``, hex ``0x7f000001``,
  octal ``0177.0.0.1``, short ``127.1``, leading zeros ``127.000.0.1`` — [``url:ip-spelling``]:
  resolvers disagree about them, so none is guessed at;
- IPv6 zone ids (``[fe80::1%25eth0]``) [``url:ip-zone``].

Hosts are lower-cased, IDNA-encoded (so fullwidth digits and ideographic full stops become ``127.0.0.1``) and lose a
trailing dot. Addresses are classified after unwrapping what IPv6 can carry inside it (IPv4-mapped
``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo): an address is ``global`` only if every form of it is.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FETCHABLE_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_CHARS = re.compile(r"[\\\s\x00-\x1f\x7f]")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_V4 = re.compile(rf"^{_OCTET}(?:\.{_OCTET}){{3}}$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_IPV4_COMPAT = ipaddress.ip_network("::/96")


class TargetError(ValueError):
    """A URL that may not be fetched; ``rule`` names the check that refused it."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A parsed outbound URL: normalised host, port, and the IP when the host is a literal."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None

    @property
    def authority(self) -> str:
        """``host[:port]`` as the ``Host`` header wants it (the port only when not the default)."""
        shown = f"[{self.host}]" if self.ip is not None and self.ip.version == 6 else self.host
        return shown if _DEFAULT_PORTS.get(self.scheme) == self.port else f"{shown}:{self.port}"


def parse_target(url: str) -> Target:
    """Parse ``url`` strictly, or raise :class:`TargetError` naming the rule it breaks."""
    if not isinstance(url, str) or not url or len(url) > 8192:
        raise TargetError("url:invalid", "the URL is empty or too long")
    if _BAD_CHARS.search(url):
        raise TargetError("url:invalid", "the URL contains a backslash, whitespace or a control character")
    try:
        parts = urlsplit(url)
        port_value = parts.port
    except ValueError as exc:
        raise TargetError("url:invalid", f"the URL does not parse ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in FETCHABLE_SCHEMES:
        raise TargetError("url:scheme", f"scheme {scheme or '(none)'!r} is never fetched (only http and https)")
    if "@" in parts.netloc:
        raise TargetError("url:userinfo", "credentials in the URL (user@ or user:pass@) are refused")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise TargetError("url:invalid", "the URL has no host")
    if "%" in raw_host:
        if parts.netloc.startswith("["):
            raise TargetError("url:ip-zone", "IPv6 zone ids are refused")
        raise TargetError("url:invalid", "percent-encoded hosts are refused")
    port = port_value if port_value is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise TargetError("url:invalid", f"port {port} is out of range")
    if parts.netloc.startswith("["):
        try:
            ip6 = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise TargetError("url:invalid", "the bracketed host is not an IPv6 address") from None
        return Target(url, scheme, str(ip6), port, ip6)
    host = _normalise_host(raw_host)
    last = host.rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.match(last):
        if not _CANONICAL_V4.match(host):
            raise TargetError("url:ip-spelling", "an IPv4 address must be written as a plain dotted quad")
        return Target(url, scheme, host, port, ipaddress.IPv4Address(host))
    return Target(url, scheme, host, port, None)


def _normalise_host(host: str) -> str:
    host = host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise TargetError("url:invalid", "the host is not a valid internationalised domain name") from None
    host = host.removesuffix(".")
    if not host or ".." in host or len(host) > 253:
        raise TargetError("url:invalid", "the host is not a valid domain name")
    return host


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.version == 4:
        return []
    assert isinstance(ip, ipaddress.IPv6Address)
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_class(ip: IPAddress) -> str:
    """``global``, or why not: ``loopback``, ``unspecified``, ``link-local``, ``private``, ``shared``,
    ``multicast``, ``reserved`` — the least global of the address and every IPv4 inside it."""
    for inner in embedded_ipv4(ip):
        inner_class = address_class(inner)
        if inner_class != "global":
            return inner_class
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped is not None or ip in _NAT64):
        return "global"  # the packets go to the (global) IPv4 address inside
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified or (ip.version == 4 and ip in ipaddress.ip_network("0.0.0.0/8")):
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and ip in _SHARED:
        return "shared"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "private"
    if not ip.is_global:
        return "reserved"
    return "global"


def parse_ip(text: str) -> IPAddress:
    """An address as a resolver returns it (``fe80::1%eth0`` loses its zone)."""
    return ipaddress.ip_address(text.split("%", 1)[0])
