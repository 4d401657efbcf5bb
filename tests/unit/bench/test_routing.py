from pipeline.bench.routing import audience_corpus, run_routing_suite
from pipeline.directory import Directory, generate_members
from pipeline.enrich import enrich
from pipeline.routing import RoutingIndex, route


def test_audience_corpus_reaches_few_members_whatever_the_size():
    for size in (30, 600):
        members = generate_members(size)
        index = RoutingIndex(Directory(members))
        corpus = audience_corpus(members, 120, seed=1)
        reached = [len(route(enrich(dict(a), index), index)) for a in corpus]
        assert min(reached) >= 1 and max(reached) <= 2, "an owner, or a named recipient (and its owner)"


def test_suite_reports_each_size_and_the_ratios():
    result = run_routing_suite(sizes=(20, 200), alerts=200, repeat=1, say=lambda _: None)
    assert set(result["route_us"]) == {"20", "200"} and all(v > 0 for v in result["route_us"].values())
    assert result["route_ratio"] == round(result["route_us"]["200"] / result["route_us"]["20"], 3)
    fanout = result["fanout"]["200"]
    assert fanout["deliveries_per_alert"] > result["fanout"]["20"]["deliveries_per_alert"]
    assert fanout["us_per_delivery"] > 0
