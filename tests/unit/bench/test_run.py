from collections import Counter

from pipeline.bench.run import corpus, dedup_state_bytes
from pipeline.directory import Directory, generate_members


def test_corpus_is_avro_about_500_bytes_with_a_fifth_duplicates():
    records = corpus(Directory(generate_members(200)), 2000, 0.2).records(2000)
    assert Counter(r.kind for r in records) == {"unique": 1600, "duplicate": 400}
    assert {dict(r.headers)["format"] for r in records} == {b"alert-avro"}
    mean = sum(len(r.value) for r in records) / len(records)
    assert 400 <= mean <= 600
    assert len({r.alert_id for r in records}) == 2000


def test_dedup_state_grows_with_keys():
    small, large = dedup_state_bytes(1_000), dedup_state_bytes(20_000)
    assert 0 < small < large
