import pytest

from pipeline.directory import DirectoryError, dump_directory, generate_members, load_directory

GOOD = """
members:
  - id: grid-op
    name: Grid Operator
    sectors: [energy]
    constituency: {cidrs: [192.0.2.0/24], asns: [64500], domains: [grid.example]}
    subscriptions:
      - {id: energy, sectors: [energy], min_severity: medium}
  - id: city
    name: City Council
    sectors: [public-administration]
    constituency: {cidrs: ["2001:db8:5::/48"], domains: [city.example]}
"""


def test_load():
    directory = load_directory(GOOD)
    assert len(directory) == 2
    assert directory.get("grid-op").subscriptions[0].min_severity == "medium"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("asns: [64500]", "asns: [64500], colour: red"), "constituency.colour: Extra inputs"),
        (("sectors: [energy]\n    constituency", "sectors: [oil]\n    constituency"), "sectors.0"),
        (("min_severity: medium", "min_severity: urgent"), "min_severity"),
        (("id: city", "id: City Council"), "member City Council: id"),
        (("domains: [city.example]", "domains: [x.grid.example]"), "lies under grid.example"),
        (('["2001:db8:5::/48"]', '["192.0.2.128/25"]'), "overlaps 192.0.2.0/24"),
        (('["2001:db8:5::/48"], domains', '["2001:db8:5::/48"], asns: [64500], domains'), "AS64500"),
        (("id: city", "id: grid-op"), "duplicate id"),
    ],
)
def test_problems_are_named(change, message):
    with pytest.raises(DirectoryError) as caught:
        load_directory(GOOD.replace(*change), "members.yaml")
    assert message in str(caught.value)


def test_generated_directory_is_valid_and_realistic():
    members = generate_members(1152)
    directory = load_directory(dump_directory(members))  # validates: no overlaps, all keys known
    assert len(directory) == 1152
    sectors = {s for m in members for s in m.sectors}
    assert len(sectors) >= 15
    assert all(2 <= len(m.subscriptions) <= 4 for m in members)
    assert generate_members(5, seed=1) == generate_members(5, seed=1)


def test_example_directory_loads():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "examples" / "members.yaml").read_text()
    assert len(load_directory(text)) >= 5


def test_delivery_targets_are_validated_with_their_ceiling():
    import pytest as _pytest
    from pydantic import ValidationError

    from pipeline.directory import Member, Target

    ok = Target(
        id="siem", type="syslog", endpoint="siem.example:6514", tlp_ceiling="AMBER+STRICT", format="cef"
    )
    assert ok.batch_size == 100 and not ok.public
    for bad, problem in [
        ({"type": "webhook", "endpoint": "http://hooks.example/x"}, "must be an https:// URL"),
        ({"type": "email", "endpoint": "nobody"}, "needs an address"),
        ({"type": "syslog", "endpoint": "siem.example"}, "host:port"),
        ({"type": "file", "endpoint": "/out", "tlp_ceiling": "PURPLE"}, "tlp_ceiling"),
        ({"type": "file", "endpoint": "/out", "secret_ref": "has spaces"}, "secret_ref"),
        ({"type": "pigeon", "endpoint": "x"}, "type"),
    ]:
        with _pytest.raises(ValidationError, match=problem):
            Target(id="t", **bad)
    with _pytest.raises(ValidationError, match="target ids must be unique: a"):
        Member(
            id="m", name="M", targets=(ok.model_copy(update={"id": "a"}), ok.model_copy(update={"id": "a"}))
        )
