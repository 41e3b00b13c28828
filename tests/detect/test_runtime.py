"""Detector networks: scratch memory goes back after each image, once however many passes it took."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage import data

from deid.detect.faces import CenterFaceDetector
from deid.detect.runtime import Network


class _CountingReleases:
    """OpenVINO's compiled model, passed through, with its ``release_memory`` calls counted."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self.releases = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._compiled, name)

    def release_memory(self) -> None:
        self.releases += 1
        self._compiled.release_memory()


def _counted(network: Network) -> _CountingReleases:
    counting = _CountingReleases(network._compiled)
    network._compiled = counting
    network._release_after_run = True  # as in a worker started with huge pages
    return counting


def test_the_four_centerface_passes_over_one_image_give_their_memory_back_once() -> None:
    detector = CenterFaceDetector()
    counting = _counted(detector._session)
    regions = detector.detect(np.ascontiguousarray(data.astronaut()))
    assert regions, "the astronaut's face is found with the memory kept between passes"
    assert counting.releases == 1, "one release after the upright and the three turned passes"


def test_a_run_outside_a_deferred_block_gives_its_memory_back_and_blocks_nest() -> None:
    network = CenterFaceDetector()._session
    counting = _counted(network)
    feeds = {"input.1": np.zeros((1, 3, 64, 64), np.float32)}
    network.run(None, feeds)
    assert counting.releases == 1
    with network.deferred_release():
        with network.deferred_release():
            network.run(None, feeds)
        network.run(None, feeds)
        assert counting.releases == 1, "nothing goes back inside the outer block"
    assert counting.releases == 2
