"""The webhook SSRF check: which destinations production refuses, judged on what a (fake) resolver says."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from todo_backend.webhooks.destinations import (
    Destination,
    UnsafeDestination,
    check_destination,
    forbidden_reason,
    parse_url,
    pinned_request,
)


class FakeResolver:
    """Answers every name with `addresses`, and remembers what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        return self.addresses


async def failing_resolver(host: str, port: int) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def untouchable_resolver(host: str, port: int) -> Sequence[str]:
    raise AssertionError("an address literal must not be looked up")


async def check(url: str, *addresses: str, production: bool = True) -> Destination:
    return await check_destination(url, production=production, resolve=FakeResolver(*addresses))


# --- address classes ---------------------------------------------------------------------------------

FORBIDDEN = {
    "loopback": ["127.0.0.1", "127.255.0.9", "::1"],
    "private": ["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "fd12:3456::1", "198.18.0.1"],
    "link-local": ["169.254.1.1", "fe80::1"],
    "multicast": ["224.0.0.1", "239.255.255.250", "ff02::1"],
    "reserved": ["240.0.0.1", "255.255.255.255"],
    "unspecified": ["0.0.0.0", "::"],
    "cloud metadata": [
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    ],
    "non-global": ["100.64.0.1"],
    "site-local": ["fec0::1"],
}
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [(a, reason) for reason, addresses in FORBIDDEN.items() for a in addresses],
)
def test_each_non_public_address_class_is_forbidden_with_its_reason(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: connects to 127.0.0.1
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ],
)
def test_an_ipv4_address_hidden_in_an_ipv6_one_is_judged_as_itself(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None and found.startswith(reason)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


# --- production: what the resolver returns decides -----------------------------------------------------


@pytest.mark.parametrize("address", [a for addresses in FORBIDDEN.values() for a in addresses])
async def test_production_refuses_a_name_resolving_to_a_forbidden_address(address: str) -> None:
    with pytest.raises(UnsafeDestination, match="resolves to"):
        await check("https://hooks.example.com/in", address)


async def test_production_refuses_a_name_when_any_of_its_addresses_is_forbidden() -> None:
    # A rebinding name may answer a public and a private address: the connection must not pick.
    with pytest.raises(UnsafeDestination, match=r"10\.0\.0\.7"):
        await check("https://hooks.example.com/in", "93.184.215.14", "10.0.0.7")


async def test_production_allows_a_name_resolving_only_to_public_addresses_and_pins_the_first() -> None:
    resolve = FakeResolver("93.184.215.14", "2606:4700:4700::1111")
    dest = await check_destination("https://Hooks.Example.com:8443/in?x=1", production=True, resolve=resolve)
    assert dest.addresses == (
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:4700:4700::1111"),
    )
    assert str(dest.url) == "https://hooks.example.com:8443/in?x=1"
    assert resolve.asked == [("hooks.example.com", 8443)]


async def test_the_resolver_is_asked_for_the_default_port_of_the_scheme() -> None:
    resolve = FakeResolver("93.184.215.14")
    await check_destination("https://hooks.example.com/in", production=True, resolve=resolve)
    await check_destination("http://hooks.example.com/in", production=False, resolve=resolve)
    assert resolve.asked == [("hooks.example.com", 443), ("hooks.example.com", 80)]


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/in", "https://[::1]:8443/in", "https://169.254.169.254/latest/meta-data/"],
)
async def test_production_refuses_forbidden_address_literals_without_a_lookup(url: str) -> None:
    with pytest.raises(UnsafeDestination, match="resolves to"):
        await check_destination(url, production=True, resolve=untouchable_resolver)


async def test_a_numeric_host_that_resolvers_read_as_an_address_is_refused_before_any_lookup() -> None:
    # 2130706433 is 127.0.0.1 to getaddrinfo: neither a host name nor an address literal.
    with pytest.raises(UnsafeDestination, match="host name"):
        await check_destination("https://2130706433/in", production=True, resolve=untouchable_resolver)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost.",
        "api.localhost",
        "metadata.google.internal",
        "metadata",
        "svc.cluster.internal",
    ],
)
async def test_production_refuses_internal_host_names_before_resolving_them(host: str) -> None:
    with pytest.raises(UnsafeDestination, match="internal host name"):
        await check_destination(f"https://{host}/in", production=True, resolve=untouchable_resolver)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeDestination, match="does not resolve"):
        await check_destination("https://nowhere.example/in", production=True, resolve=failing_resolver)
    with pytest.raises(UnsafeDestination, match="does not resolve"):
        await check("https://nowhere.example/in")  # an empty answer


async def test_production_refuses_plain_http() -> None:
    with pytest.raises(UnsafeDestination, match="scheme must be https"):
        await check("http://hooks.example.com/in", "93.184.215.14")


# --- local development and tests ---------------------------------------------------------------------


async def test_outside_production_http_and_loopback_are_allowed() -> None:
    dest = await check_destination("http://127.0.0.1:8123/in", production=False, resolve=untouchable_resolver)
    assert dest.addresses == (ipaddress.ip_address("127.0.0.1"),)
    dest = await check("http://localhost:8123/in", "::1", "127.0.0.1", production=False)
    assert dest.addresses == (ipaddress.ip_address("::1"), ipaddress.ip_address("127.0.0.1"))


# --- the form of the URL, everywhere --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/in", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("hooks.example.com/in", "scheme"),
        ("https://user:pw@hooks.example.com/in", "credentials"),
        ("https:///in", "host"),
        ("http://[::1/in", "not a valid URL"),
    ],
)
@pytest.mark.parametrize("production", [True, False])
def test_malformed_or_unsupported_urls_are_refused(url: str, message: str, production: bool) -> None:
    with pytest.raises(UnsafeDestination, match=message):
        parse_url(url, https_only=production)


# --- pinning ---------------------------------------------------------------------------------------------


def test_the_request_connects_to_the_checked_address_but_names_the_subscribed_host() -> None:
    address = ipaddress.ip_address("93.184.215.14")
    dest = Destination(httpx.URL("https://hooks.example.com:8443/in?x=1"), (address,))
    request = pinned_request(dest, address, {"X-Todo-Delivery": "d1"}, b"{}")
    assert request.url.host == "93.184.215.14" and request.url.port == 8443
    assert request.url.raw_path == b"/in?x=1"
    assert request.headers["Host"] == "hooks.example.com:8443"
    # TLS: SNI and certificate verification use the subscribed name, not the address.
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["X-Todo-Delivery"] == "d1"


def test_a_pinned_ipv6_address_is_bracketed_and_the_default_port_is_left_out_of_host() -> None:
    address = ipaddress.ip_address("2606:4700::1111")
    dest = Destination(httpx.URL("http://hooks.example.com/in"), (address,))
    request = pinned_request(dest, address, {}, b"{}")
    assert str(request.url) == "http://[2606:4700::1111]/in"
    assert request.headers["Host"] == "hooks.example.com"
    assert "sni_hostname" not in request.extensions


# --- the URL's form: what no connection could use is refused at subscription -------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/hook",  # no such port
        "http://127.0.0.1:0/hook",
        "http://hooks example.com/hook",  # a space in the host
        "http://hooks%20example.com/hook",
        "http://hooks_example.com/hook",
        "http://-hooks.example.com/",
        "http://hooks-.example.com/",
        "http://hooks..example.com/",
        "http://hooks,example.com/",
        "http://1.2.3/",  # all-digit last label: resolvers read it as 1.2.0.3
        "http://127.1/",
        f"http://{'a' * 64}.example.com/",  # a label over 63 characters
        "http://" + "a." * 127 + "com/",  # a name over 253 characters
    ],
)
def test_a_url_whose_host_or_port_could_never_be_connected_to_is_refused(url: str) -> None:
    with pytest.raises(UnsafeDestination):
        parse_url(url, https_only=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:65535/",
        "https://hooks.example.com/in",
        "https://hooks.example.com./in",
        "https://xn--bcher-kva.example/",
        "https://bücher.example/",
        "http://[::1]:8080/",
        "https://3com.example/",
    ],
)
def test_ordinary_host_names_and_addresses_are_accepted(url: str) -> None:
    parse_url(url, https_only=False)


@given(host=st.text(max_size=80), port=st.integers(min_value=-10, max_value=200_000))
def test_any_host_and_port_is_accepted_as_a_plain_name_or_address_or_refused_never_an_error(
    host: str, port: int
) -> None:
    try:
        parsed = parse_url(f"http://{host}:{port}/hook", https_only=False)
    except UnsafeDestination:
        return
    assert parsed.port is None or 1 <= parsed.port <= 65535  # None: the scheme's default, 80
    if not set(host) & set("/?#\\"):  # else what follows the host is a path, query or fragment
        assert 1 <= port <= 65535 and parsed.port in (port, None)
    name = parsed.raw_host.decode("ascii")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
        assert all(0 < len(label) <= 63 for label in name.rstrip(".").split("."))
