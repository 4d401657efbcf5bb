import gc
import weakref

from pipeline.process import settle_heap


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settled_objects_are_out_of_the_collectors_sight():
    try:
        kept = [Node() for _ in range(3)]
        settle_heap()
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(node) in tracked for node in kept)
    finally:
        gc.unfreeze()


def test_settling_again_frees_cycles_dropped_since_the_last_time():
    try:
        kept = [Node()]
        dropped = weakref.ref(kept[0])
        settle_heap()
        kept.clear()  # the node is garbage now, but frozen: no collection reaches it
        gc.collect()
        assert dropped() is not None
        settle_heap()  # as after a new directory replaces the old one
        assert dropped() is None
    finally:
        gc.unfreeze()
