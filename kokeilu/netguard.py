"""Outbound HTTP to addresses that API users choose (webhooks), without server-side request forgery.

A destination is allowed when every address its host resolves to is public: not loopback,
private, link-local, multicast, unspecified, reserved, shared (CGNAT) or otherwise non-global,
in any notation (dotted, decimal `2130706433`, hex `0x7f000001`, short `127.1`: the resolver
turns them into the address that is checked), and no IPv6 form that embeds such an IPv4 address
(IPv4-mapped `::ffff:127.0.0.1`, IPv4-compatible, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`, Teredo).
Names that point inward whatever DNS says (`localhost`, `*.localhost`, `*.internal`, `*.local`,
`metadata.google.internal`) are refused even when DNS gives a public answer.

`AddressPolicy.parse(KOKEILU_WEBHOOK_ALLOWLIST)` adds explicit exceptions for local development
and tests: comma-separated CIDRs or addresses (`127.0.0.0/8,::1`) whose addresses are allowed, and
host names that are allowed whatever they resolve to.

`GuardedAdapter` is a requests transport adapter that resolves the host itself, checks every
address, and connects to an address it checked: a name whose DNS answer changed since the
subscription was made (DNS rebinding) cannot reach an inward address. TLS still verifies the
certificate against the host name.

(requests-hardened was considered: it checks only the first DNS answer and has no allow-list of
networks or names, which local development and tests need; the technique is the same.)
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[Any]]  # socket.getaddrinfo's signature

# Never a webhook's destination, besides what `ipaddress` calls private, reserved and so on
# (some are missing from the tables of older Python releases).
_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_INWARD_NAMES = {"localhost", "metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
_INWARD_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)


class AddressRefused(Exception):
    """The destination is not allowed. The message is neutral: it never says what a name resolved to."""


class UnresolvedHost(Exception):
    """The host name does not resolve (now)."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, compatible, 6to4, NAT64, Teredo."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for every kind of inward address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:  # a NAT64 gateway connects to the embedded IPv4 address: that decides
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(not is_public(v4) for v4 in embedded_ipv4(ip)):
            return False
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    return not any(ip.version == net.version and ip in net for net in _BLOCKED)


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def inward_name(host: str) -> bool:
    """A name that points at the platform itself or its cloud, whatever DNS answers."""
    host = _normal_host(host)
    return host in _INWARD_NAMES or host.endswith(_INWARD_SUFFIXES)


@dataclass(frozen=True)
class AddressPolicy:
    """Which webhook destinations are allowed: public addresses, plus the explicit allow-list."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, raw: str | None) -> AddressPolicy:
        """From `KOKEILU_WEBHOOK_ALLOWLIST`: comma-separated CIDRs, addresses or host names."""
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        hosts: set[str] = set()
        for item in (raw or "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
                continue
            except ValueError:
                pass
            name = _normal_host(item)
            if not _HOST_NAME.match(name):
                raise ValueError(f"KOKEILU_WEBHOOK_ALLOWLIST: {item!r} is neither a CIDR, an address nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def listed(self, ip: IPAddress) -> bool:
        """In one of the allow-list's networks (an IPv4-mapped address counts as its IPv4 address)."""
        candidates = [ip] + ([ip.ipv4_mapped] if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else [])
        return any(c.version == net.version and c in net for c in candidates for net in self.networks)

    def allows_address(self, ip: IPAddress) -> bool:
        return is_public(ip) or self.listed(ip)

    def resolve(
        self, host: str, port: int, getaddrinfo: Resolver = socket.getaddrinfo
    ) -> list[tuple[int, tuple[Any, ...]]]:
        """Every (family, sockaddr) `host` resolves to, when each of them is allowed.

        AddressRefused when one is not (a name with one public and one inward address is refused
        too); socket.gaierror when the name does not resolve. A name that points inward
        (`localhost`, `*.internal` ...) is allowed only when all its addresses are in the allow-list."""
        name = _normal_host(host)
        if not name:
            raise AddressRefused("no host")
        trusted = name in self.hosts
        inward = not trusted and inward_name(name)
        if inward and not self.networks:
            raise AddressRefused("address not allowed")
        try:
            answers = getaddrinfo(name, port, 0, socket.SOCK_STREAM)
        except socket.gaierror:
            if inward:
                raise AddressRefused("address not allowed") from None
            raise
        targets = []
        for family, _type, _proto, _canon, sockaddr in answers:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            allowed = trusted or (self.listed(ip) if inward else self.allows_address(ip))
            if not allowed:
                raise AddressRefused("address not allowed")
            targets.append((family, sockaddr))
        if not targets:
            raise AddressRefused("address not allowed")
        return targets

    def check_url(self, url: str, getaddrinfo: Resolver = socket.getaddrinfo) -> None:
        """At subscription time: AddressRefused for an inward destination, UnresolvedHost when the
        name does not resolve. (Checked again at every delivery: DNS answers change.)"""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AddressRefused("only http and https URLs with a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise AddressRefused("invalid port") from None
        try:
            self.resolve(parts.hostname, port, getaddrinfo)
        except (socket.gaierror, UnicodeError):
            raise UnresolvedHost(f"the host {parts.hostname!r} does not resolve") from None


# What the mixin is mixed into, for mypy (at run time it is a plain mixin).
if TYPE_CHECKING:
    _Connection = HTTPConnection
else:
    _Connection = object


class _GuardedConnectionMixin(_Connection):
    """Resolves and checks the host, then connects to an address that was checked."""

    policy: AddressPolicy
    getaddrinfo: Resolver

    def _new_conn(self) -> socket.socket:
        try:
            targets = self.policy.resolve(self._dns_host, self.port, self.getaddrinfo)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: Exception | None = None
        for _family, sockaddr in targets:
            try:
                return urllib3_connection.create_connection(
                    (str(sockaddr[0]), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                )
                error.__cause__ = exc
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
                error.__cause__ = exc
        if error is None:  # (targets is never empty)
            raise AddressRefused("address not allowed")
        raise error


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only where `policy` allows (mount it for http:// and
    https://, and set `session.trust_env = False`: a proxy would connect on our behalf)."""

    def __init__(self, policy: AddressPolicy, getaddrinfo: Resolver = socket.getaddrinfo, **kwargs: Any) -> None:
        self.policy = policy
        self.getaddrinfo = getaddrinfo
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        bound = {"policy": self.policy, "getaddrinfo": staticmethod(self.getaddrinfo)}
        http = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), bound)
        https = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), bound)
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> NoReturn:
        raise AddressRefused("webhooks are not sent through a proxy")
