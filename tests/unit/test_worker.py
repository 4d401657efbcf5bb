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


def test_a_worker_asked_to_restart_for_unread_topics_does_it_once_when_the_first_appears(caplog):
    restarts: list[int] = []
    watch = watch_unread(PREFIX, {PREFIX + "ids"}, lambda _: None, lambda: restarts.append(1))
    with caplog.at_level(logging.WARNING, logger="pipeline.worker"):
        watch({(PREFIX + "ids", 0): (5, 0)})
        assert restarts == []
        watch({(PREFIX + "ids", 0): (5, 0), (PREFIX + "new", 0): (-1001, 4)})
        watch({(PREFIX + "new", 0): (-1001, 4), (PREFIX + "other", 0): (-1001, 1)})
    assert restarts == [1]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("its restart reads them" in m for m in messages)
