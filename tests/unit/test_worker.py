import logging

from pipeline.worker import watch_unread

PREFIX = "ns.cwn.alerts.raw."


def test_producer_topics_the_worker_does_not_read_are_counted_and_named_once(caplog):
    counts: list[int] = []
    watch = watch_unread(PREFIX, {PREFIX + "ids"}, counts.append)
    read = {
        (PREFIX + "ids", 0): (5, 0),
        ("ns.cwn.alerts.raw", 0): (9, 0),
        ("ns.cwn.alerts.normalised", 1): (3, 2),
    }
    with caplog.at_level(logging.WARNING, logger="pipeline.worker"):
        watch(read)
        watch(read | {(PREFIX + "new", 0): (-1001, 4), (PREFIX + "new", 1): (-1001, 0)})
        watch(read | {(PREFIX + "new", 0): (-1001, 4), (PREFIX + "other", 0): (-1001, 1)})
        watch(read)  # the topics were deleted
    assert counts == [0, 1, 2, 0]
    named = [r.getMessage().split()[2] for r in caplog.records]
    assert named == [PREFIX + "new", PREFIX + "other"]
