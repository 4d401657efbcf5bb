"""The control state, as every worker assembles it from the control topics (no broker)."""

from pathlib import Path

import orjson

from pipeline.asn import to_chunks
from pipeline.control import ASN_MANIFEST, ControlState, DirectoryView
from pipeline.rules import load_rules
from pipeline.settings import Settings
from pipeline.topics import ENRICHMENT, FEEDS

SAMPLE = (
    Path(__file__).resolve().parents[1] / "samples" / "ip2asn" / "ip2asn-combined-sample.tsv"
).read_text()


def test_view_offers_what_the_agents_read_before_anything_arrives():
    view = DirectoryView(Settings(bootstrap="127.0.0.1:1"))
    assert len(view.feeds) == 0 and view.asn.ranges == 0 and view.rules.apply is not None
    assert len(view.index.directory) == 0


def test_enrichment_rules_and_an_asn_dataset_in_chunks():
    state = ControlState()
    rules = load_rules("warninglists: [{id: r, values: [9.9.9.9]}]")
    state.apply(ENRICHMENT, b"rules", rules.rules.model_dump_json().encode())
    assert [w.id for w in state.rules().rules.warninglists] == ["r"]

    chunks = to_chunks(SAMPLE * 3000)
    manifest = {"chunks": len(chunks), "sha256": "will-not-match-until-parsed", "ranges": 0}
    state.apply(ENRICHMENT, ASN_MANIFEST.encode(), orjson.dumps(manifest))
    assert state.asn().ranges == 0, "chunks still missing: the old dataset stays"
    for i, chunk in enumerate(chunks):
        state.apply(ENRICHMENT, f"asn/{i}".encode(), chunk)
    dataset = state.asn()
    assert dataset.lookup("45.0.0.1").asn == 64496
    assert state.asn() is dataset or state.asn().digest == dataset.digest


def test_feeds_and_tombstones():
    state = ControlState()
    spec = b'{"id": "a/b", "format": "cef", "producers": ["p"]}'
    state.apply(FEEDS, b"a/b", spec)
    assert state.feeds().get("a/b") is not None
    state.apply(FEEDS, b"a/b", None)
    assert state.feeds().get("a/b") is None
