from pathlib import Path

import pytest

from pipeline.feeds import FeedsError, load_feeds

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_registry_is_valid():
    registry = load_feeds((ROOT / "feeds.yaml").read_text())
    urlhaus = registry.get("abusech/urlhaus")
    assert urlhaus is not None and urlhaus.provider == "abusech" and urlhaus.name == "urlhaus"
    assert urlhaus.allows("feed-fetcher") and not urlhaus.allows("someone")
    assert {f.format for f in registry} >= {
        "suricata-eve",
        "stix2",
        "misp",
        "csv",
        "intelmq",
        "cef",
        "alert-json",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "feeds: [{id: a/b, format: cef, producers: [p], colour: red}]",
            "colour: Extra inputs are not permitted",
        ),
        ("feeds: [{id: a/b, format: yaml, producers: [p]}]", "format: Input should be"),
        ("feeds: [{id: nope, format: cef, producers: [p]}]", "id: String should match pattern"),
        ("feeds: [{id: a/b, format: cef, producers: []}]", "producers: Tuple should have at least 1 item"),
        ("feeds: [{id: a/b, format: cef, producers: [p], default_tlp: PURPLE}]", "unknown TLP label"),
        (
            "feeds: [{id: a/b, format: cef, producers: [p], classification: malware}]",
            "not an RSIT class/type",
        ),
        (
            "feeds: [{id: a/b, format: cef, producers: [p]}, {id: a/b, format: cef, producers: [p]}]",
            "declared twice",
        ),
        ("members: []", "one top-level key `feeds`"),
        ("feeds: [", "not valid YAML"),
    ],
)
def test_problems_are_named(text, problem):
    with pytest.raises(FeedsError) as caught:
        load_feeds(text, "test.yaml")
    assert problem in str(caught.value)


def test_every_problem_is_reported_at_once():
    text = "feeds: [{id: a/b, format: cef}, {id: c/d, format: nope, producers: [p]}]"
    with pytest.raises(FeedsError) as caught:
        load_feeds(text)
    assert len(caught.value.problems) == 2
    assert "feed a/b: producers: Field required" in caught.value.problems[0]
