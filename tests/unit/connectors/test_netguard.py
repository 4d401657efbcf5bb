import asyncio
import ipaddress

import pytest

from connectors.netguard import AllowList, EndpointRefused, check, resolve, why_internal

INTERNAL = {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "not globally routable",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "192.0.2.10": "private",
    "::ffff:10.0.0.1": "private (IPv4 inside IPv6)",
    "::ffff:127.0.0.1": "loopback (IPv4 inside IPv6)",
    "64:ff9b::a9fe:a9fe": "link-local (IPv4 inside IPv6)",
}


@pytest.mark.parametrize("address", sorted(INTERNAL))
def test_every_internal_range_is_refused(address):
    assert why_internal(ipaddress.ip_address(address)) == INTERNAL[address]
    with pytest.raises(EndpointRefused, match="allow-list"):
        check("hooks.member.example", [address], AllowList())


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_pass(address):
    assert why_internal(ipaddress.ip_address(address)) is None


def test_one_internal_address_among_public_ones_refuses_the_host():
    with pytest.raises(EndpointRefused, match=r"10\.0\.0\.5"):
        check("rebind.example", ["8.8.8.8", "10.0.0.5"], AllowList())


def test_the_allow_list_names_networks_or_hosts():
    allow = AllowList.parse(["10.20.0.0/16", "siem.member.example.", " "])
    assert check("x", ["10.20.3.4"], allow) == ["10.20.3.4"]
    assert check("SIEM.member.example", ["192.168.0.9"], allow) == ["192.168.0.9"]
    with pytest.raises(EndpointRefused):
        check("x", ["10.21.0.1"], allow)


def test_resolution_checks_what_the_name_resolves_to():
    with pytest.raises(EndpointRefused, match="loopback"):
        asyncio.run(resolve("localhost", 443, AllowList()))
    assert asyncio.run(resolve("localhost", 443, AllowList.parse(["127.0.0.0/8", "::1/128"])))


def test_an_unresolvable_name_is_worth_retrying_not_refused():
    with pytest.raises(OSError, match="cannot be resolved") as info:
        asyncio.run(resolve("no-such-host.invalid", 443, AllowList()))
    assert not isinstance(info.value, EndpointRefused)
