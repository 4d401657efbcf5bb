import ipaddress

import pytest

from pipeline.directory import Constituency, Directory, Member
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex

INDEX = RoutingIndex(
    Directory(
        [
            Member(
                id="grid",
                name="Grid",
                sectors=("energy",),
                constituency=Constituency(
                    cidrs=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48")),
                    asns=(64500,),
                    domains=("grid.example",),
                ),
            ),
            Member(
                id="clinic",
                name="Clinic",
                sectors=("health",),
                constituency=Constituency(
                    cidrs=(ipaddress.ip_network("198.51.100.0/25"),), domains=("clinic.example",)
                ),
            ),
        ]
    )
)


def alert(**fields):
    return {"sectors": [], "indicators": [], "source": None, "destination": None} | fields


@pytest.mark.parametrize(
    ("fields", "owners"),
    [
        ({"source": {"ip": "192.0.2.77"}}, ["grid"]),
        ({"destination": {"ip": "2001:db8:1:ffff::1"}}, ["grid"]),
        ({"source": {"asn": 64500}}, ["grid"]),
        ({"source": {"fqdn": "mail.grid.example"}}, ["grid"]),
        ({"source": {"url": "https://portal.clinic.example/login"}}, ["clinic"]),
        ({"indicators": [{"type": "email", "value": "ceo@clinic.example"}]}, ["clinic"]),
        ({"indicators": [{"type": "ipv4", "value": "198.51.100.200"}]}, []),
        ({"indicators": [{"type": "asn", "value": "AS64500"}]}, ["grid"]),
        ({"source": {"ip": "192.0.2.1"}, "destination": {"ip": "198.51.100.1"}}, ["clinic", "grid"]),
        ({"source": {"fqdn": "notgrid.example"}}, []),
    ],
)
def test_owners(fields, owners):
    assert enrich(alert(**fields), INDEX)["members_inside"] == owners


def test_sectors_of_owners_are_added():
    out = enrich(alert(sectors=["transport"], source={"ip": "192.0.2.5"}), INDEX)
    assert out["sectors"] == ["energy", "transport"]
