from hypothesis import given
from hypothesis import strategies as st

from connectors.offsets import OffsetBook

TP = ("cwn.deliver.m1", 0)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=40), st.randoms())
def test_never_commits_past_an_unfinished_record(owed, rnd):
    book = OffsetBook()
    outcomes = []
    for offset, n in enumerate(owed):
        book.read(TP, offset, n)
        outcomes += [offset] * n
    rnd.shuffle(outcomes)
    remaining = dict(enumerate(owed))
    last = None
    for offset in outcomes:
        book.done(TP, offset)
        remaining[offset] -= 1
        first_unfinished = next((o for o, n in sorted(remaining.items()) if n > 0), len(owed))
        committable = book.committable().get(TP, last)
        assert committable == first_unfinished
        book.committed({TP: committable})
        last = committable
    assert book.outstanding() == 0


def test_only_moved_offsets_are_offered_and_dropped_partitions_are_forgotten():
    book = OffsetBook()
    book.read(TP, 0, 1)
    assert book.committable() == {TP: 0}
    book.committed({TP: 0})
    assert book.committable() == {}
    book.done(TP, 0)
    assert book.committable() == {TP: 1}
    book.drop([TP])
    book.done(TP, 0)
    assert book.committable() == {}
