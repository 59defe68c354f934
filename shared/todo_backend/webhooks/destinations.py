"""Webhook destinations: which URLs and addresses a POST may go to (the SSRF check), how a name is
resolved, and the request pinned to a checked address.

Outside local development every destination is checked against the addresses DNS gives at that moment,
and the connection goes to the checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from todo_backend.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class UnsafeDestination(Exception):
    """A webhook URL this deployment will not POST to; the message says why."""


# Cloud metadata and platform endpoints, blocked even where the address classes would allow them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
        "168.63.129.16",  # Azure WireServer: a public address that only the platform answers
        "192.0.0.192",  # Oracle Cloud metadata
    )
)
BLOCKED_HOSTNAMES = frozenset({"localhost", "metadata", "metadata.google.internal", "instance-data"})
# NAT64 prefixes carry an IPv4 address in their last 32 bits: check that address too.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def forbidden_reason(address: Address) -> str | None:
    """Why a production webhook may not connect to `address` (None: it is a public unicast address)."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv6Address):
        # A mapped or NAT64 address reaches exactly its IPv4 address, which alone decides.
        translated = address.ipv4_mapped
        if translated is None and any(address in net for net in _NAT64):
            translated = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if translated is not None:
            inner = forbidden_reason(translated)
            return f"{inner} (as {address})" if inner else None
        # 6to4 and Teredo carry an IPv4 address too: it must be allowed, and so must the outer one.
        for tunnelled in (address.sixtofour, (address.teredo or (None, None))[1]):
            inner = forbidden_reason(tunnelled) if tunnelled is not None else None
            if inner:
                return f"{inner} (tunnelled in {address})"
        if address.is_site_local:
            return "site-local"
    for reason, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("non-global", not address.is_global),  # e.g. 100.64.0.0/10, shared carrier address space
    ):
        if hit:
            return reason
    return None


def parse_url(url: str, *, https_only: bool) -> httpx.URL:
    """The URL if its form is acceptable: http(s), a host, no credentials; https only if so asked."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UnsafeDestination(f"not a valid URL: {exc}") from exc
    allowed = ("https",) if https_only else ("http", "https")
    if parsed.scheme not in allowed:
        raise UnsafeDestination(f"the URL scheme must be {' or '.join(allowed)}")
    if not parsed.host:
        raise UnsafeDestination("the URL must name a host")
    if parsed.userinfo:
        raise UnsafeDestination("the URL must not carry credentials")
    # httpx keeps any port number and percent-encodes what a host may not hold; neither could connect.
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise UnsafeDestination(f"the port must be between 1 and 65535, not {parsed.port}")
    host = parsed.raw_host.decode("ascii")
    if not (_is_ip_literal(host) or _HOSTNAME.fullmatch(host)):
        raise UnsafeDestination("the host must be a host name (letters, digits and hyphens) or an IP address")
    return parsed


# An RFC 1123 host name (httpx has already turned an IDN into its xn-- form): labels of letters, digits
# and inner hyphens, up to 63 characters each and 253 in all, and a last label not all digits, which
# resolvers would read as a shorthand IPv4 address (127.1).
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"(?![0-9]+\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Destination:
    url: httpx.URL  # as subscribed
    addresses: tuple[Address, ...]  # the checked addresses, the only ones a connection may go to


async def check_destination(url: str, *, production: bool, resolve: Resolver) -> Destination:
    """Where a POST to `url` would go, refused (UnsafeDestination) if production forbids it.

    Every address `resolve` returns must be allowed, not just one: the connection must not be steered
    to another record of the same name. Local development and tests allow http and any address.
    """
    parsed = parse_url(url, https_only=production)
    host = parsed.raw_host.decode("ascii").lower()
    name = host.rstrip(".")
    if production and (name in BLOCKED_HOSTNAMES or name.endswith((".localhost", ".internal"))):
        raise UnsafeDestination(f"{host} is an internal host name")
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            resolved = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
            # A scope id (fe80::1%eth0) only narrows a link-local address, which is refused anyway.
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolved]
        except (OSError, ValueError) as exc:
            raise UnsafeDestination(f"{host} does not resolve: {exc}") from exc
    if not addresses:
        raise UnsafeDestination(f"{host} does not resolve")
    if production:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason:
                raise UnsafeDestination(f"{host} resolves to {address}, a {reason} address")
    return Destination(parsed, tuple(dict.fromkeys(addresses)))


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_production(settings: Settings) -> bool:
    return settings.todo_env == "production"


def pinned_request(
    dest: Destination, address: Address, headers: dict[str, str], body: bytes
) -> httpx.Request:
    """The POST to a checked address: the URL names the address, Host and TLS SNI (and so certificate
    verification) name the subscribed host, so no second DNS lookup can send it elsewhere."""
    url = dest.url.copy_with(host=str(address))
    extensions: dict[str, Any] = {}
    if dest.url.scheme == "https":
        extensions["sni_hostname"] = dest.url.raw_host.decode("ascii")
    headers = {**headers, "Host": dest.url.netloc.decode("ascii")}
    return httpx.Request("POST", url, headers=headers, content=body, extensions=extensions)
