import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.alert import RSIT
from pipeline.rejected import Rejected
from pipeline.taxonomy import CLASS_OF_TYPE, TYPE_ALIASES, classify


@pytest.mark.parametrize(
    ("taxonomy", "kind", "expected"),
    [
        ("malicious code", "botnet drone", ("malicious-code", "infected-system")),
        ("malicious-code", "c2server", ("malicious-code", "c2-server")),
        (None, "phishing", ("fraud", "phishing")),
        ("vulnerable", "vulnerable-service", ("vulnerable", "vulnerable-system")),
        ("other", "blacklist", ("other", "undetermined")),
        ("Intrusion Attempts", "Brute Force", ("intrusion-attempts", "brute-force")),
        ("test", None, ("test", "test")),
        ("malicious-code", "scanner", ("information-gathering", "scanner")),
    ],
)
def test_classify(taxonomy, kind, expected):
    assert classify(taxonomy, kind) == expected


@pytest.mark.parametrize(
    ("taxonomy", "kind", "field"),
    [
        ("malicious-code", None, "type"),
        (None, "made-up", "type"),
        ("made-up", None, "taxonomy"),
        (None, None, "type"),
    ],
)
def test_unplaceable_is_rejected(taxonomy, kind, field):
    with pytest.raises(Rejected) as caught:
        classify(taxonomy, kind)
    assert caught.value.field == field


def test_every_type_has_one_class_and_every_alias_a_type():
    assert sum(len(kinds) for kinds in RSIT.values()) == len(CLASS_OF_TYPE)
    assert set(TYPE_ALIASES.values()) <= set(CLASS_OF_TYPE)


@given(st.sampled_from(sorted(CLASS_OF_TYPE)))
def test_rsit_pairs_are_fixed_points(kind):
    assert classify(CLASS_OF_TYPE[kind], kind) == (CLASS_OF_TYPE[kind], kind)
