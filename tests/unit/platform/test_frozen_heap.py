"""FrozenHeap: what a service made to start is left out of full garbage collections while it runs."""

from __future__ import annotations

import gc

from kokeilu.platform import FrozenHeap
from kokeilu.service_base import PlatformService


def test_start_freezes_what_lives_and_stop_gives_it_back_to_the_collector():
    heap = FrozenHeap()
    kept = [object() for _ in range(10)]
    try:
        heap.start()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.collect() >= 0  # collections still run, over what was made since
    finally:
        heap.stop()
    assert gc.get_freeze_count() == 0


def test_every_service_has_one():
    assert isinstance(PlatformService.__dict__["heap"], FrozenHeap)
