"""The two-node loopback Ray cluster of tests/ray_cluster.py: leaving it stops every process it started. (Serve on
it is tested in test_ray_backend.py, on that module's cluster.)"""

from __future__ import annotations

import psutil
import pytest
from ray_cluster import two_node_cluster

pytest.importorskip("ray")
pytestmark = pytest.mark.ray  # a cluster of its own: in the Ray modules' worker, never beside another cluster
# A worker ("ray::IDLE") exits on its own once it sees its raylet gone; on the busy CI machine one was seen still
# running just after shutdown returned.
STOP_WAIT_S = 15.0


def cluster_processes(address: str) -> set[psutil.Process]:
    """The processes of the cluster at `address`: those that name its GCS in their flags (GCS, raylets, agents)
    and everything they started (workers, which rename themselves "ray::…")."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if any(address in part for part in process.info["cmdline"] or ()):
            found |= {process, *process.children(recursive=True)}
    return found


def test_leaving_the_cluster_stops_all_its_processes():
    with two_node_cluster() as address:
        started = cluster_processes(address)
        assert len([process for process in started if "raylet" in process.name()]) == 2
    _, alive = psutil.wait_procs(started, timeout=STOP_WAIT_S)
    left = [process for process in alive if _running(process)]
    assert not left, [process.name() for process in left]


def _running(process: psutil.Process) -> bool:
    """Whether `process` still runs: not ended, not a zombie."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
