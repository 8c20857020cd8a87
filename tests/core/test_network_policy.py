import ipaddress

import pytest

from core.network import NetworkPolicy, parse_address

DEFAULT_NETWORKS = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
]


def policy(trusted=()):
    return NetworkPolicy(DEFAULT_NETWORKS, [ipaddress.ip_network(n) for n in trusted])


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.20", "::1", "fd12::5"],
)
def test_internal_addresses_are_allowed(address):
    p = policy()

    assert p.allows(p.client_address(address))


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:db8::1", "fe80::1", "100.64.0.1"],
)
def test_outside_addresses_are_refused(address):
    p = policy()

    assert not p.allows(p.client_address(address))


def test_an_ipv4_mapped_ipv6_peer_is_judged_as_ipv4():
    p = policy()

    assert p.allows(p.client_address("::ffff:10.0.0.7"))
    assert not p.allows(p.client_address("::ffff:8.8.8.8"))


@pytest.mark.parametrize("peer", [None, "", "not-an-address", "unix:/run/chat.sock"])
def test_a_peer_without_a_usable_address_is_refused(peer):
    p = policy()

    assert not p.allows(p.client_address(peer))


def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    p = policy()

    # An outsider claiming to be internal stays an outsider...
    assert p.client_address("8.8.8.8", "10.0.0.5") == ipaddress.ip_address("8.8.8.8")
    # ...and an internal client cannot make itself look like someone else.
    assert p.client_address("10.0.0.9", "10.0.0.5") == ipaddress.ip_address("10.0.0.9")


def test_a_trusted_proxy_passes_on_the_client_address():
    p = policy(trusted=["10.0.0.2/32"])

    address = p.client_address("10.0.0.2", "203.0.113.9")

    assert address == ipaddress.ip_address("203.0.113.9")
    assert not p.allows(address)


def test_a_spoofed_left_most_hop_does_not_fool_a_trusted_proxy_chain():
    p = policy(trusted=["10.0.0.0/30"])

    # The client wrote "10.9.9.9" itself; the proxies appended the real 198.51.100.4.
    address = p.client_address("10.0.0.1", "10.9.9.9, 198.51.100.4, 10.0.0.2")

    assert address == ipaddress.ip_address("198.51.100.4")


def test_a_chain_of_trusted_proxies_yields_the_left_most_address():
    p = policy(trusted=["10.0.0.0/30"])

    assert p.client_address("10.0.0.1", "10.0.0.3, 10.0.0.2") == ipaddress.ip_address("10.0.0.3")


def test_ipv6_clients_behind_an_ipv6_proxy():
    p = policy(trusted=["fd00::1/128"])

    assert p.client_address("fd00::1", "fd00::abcd") == ipaddress.ip_address("fd00::abcd")
    assert p.client_address("fd00::1", "[2001:db8::7]") == ipaddress.ip_address("2001:db8::7")


def test_garbage_from_a_trusted_proxy_is_refused():
    p = policy(trusted=["10.0.0.2/32"])

    assert not p.allows(p.client_address("10.0.0.2", "10.0.0.5, <script>"))


def test_parse_address_handles_zone_ids_and_brackets():
    assert parse_address("fe80::1%eth0") == ipaddress.ip_address("fe80::1")
    assert parse_address("[::1]") == ipaddress.ip_address("::1")
    assert parse_address("example.com") is None
