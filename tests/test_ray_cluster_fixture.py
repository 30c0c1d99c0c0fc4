"""The two-node loopback Ray cluster of tests/ray_cluster.py: Serve replicas land on both nodes, and leaving it
stops every process it started."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from ray_cluster import LOOPBACK, ray_cluster, two_node_cluster  # noqa: F401 (ray_cluster is a fixture)

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402


def cluster_processes(address: str) -> set[psutil.Process]:
    """The processes of the cluster at `address`: those that name its GCS in their flags (GCS, raylets, agents)
    and everything they started (workers, which rename themselves "ray::…")."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if any(address in part for part in process.info["cmdline"] or ()):
            found |= {process, *process.children(recursive=True)}
    return found


# First: the module's `ray_cluster` stays up until the last test here, and one process joins one cluster.
def test_leaving_the_cluster_stops_all_its_processes():
    with two_node_cluster() as address:
        started = cluster_processes(address)
        assert len([process for process in started if "raylet" in process.name()]) == 2
    left = [process for process in started if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
    assert not left, [process.name() for process in left]


def test_two_serve_replicas_run_on_the_two_loopback_nodes(ray_cluster):
    assert ray_cluster.startswith(f"{LOOPBACK}:")
    nodes = [node for node in ray.nodes() if node["Alive"]]
    assert [node["NodeManagerAddress"] for node in nodes] == [LOOPBACK, LOOPBACK]

    @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 1})
    class Where:
        def __call__(self) -> str:
            return ray.get_runtime_context().get_node_id()

    serve.start(proxy_location="Disabled")
    handle = serve.run(Where.bind(), name="where", route_prefix=None)
    with ThreadPoolExecutor(1) as off_loop:  # an earlier test may have left an asyncio loop on this thread
        seen = off_loop.submit(lambda: {handle.remote().result(timeout_s=60) for _ in range(16)}).result()
    assert seen == {node["NodeID"] for node in nodes}
    serve.delete("where")


def test_a_replica_range_starts_at_its_minimum_and_grows_with_waiting_jobs(ray_cluster):
    import time

    from modules.ray_backend.backend import scaling

    @serve.deployment(max_ongoing_requests=1, ray_actor_options={"num_cpus": 1}, **scaling((1, 2)))
    class Slow:
        def __call__(self) -> str:
            time.sleep(1)
            return serve.get_replica_context().replica_id.unique_id

    def running() -> int:
        replicas = serve.status().applications["slow"].deployments["Slow"].replica_states
        return replicas.get("RUNNING", 0)

    serve.start(proxy_location="Disabled")
    handle = serve.run(Slow.bind(), name="slow", route_prefix=None)
    assert running() == 1
    with ThreadPoolExecutor(1) as off_loop:  # see above
        seen = off_loop.submit(
            lambda: {answer.result(timeout_s=120) for answer in [handle.remote() for _ in range(24)]}
        ).result()
    assert len(seen) == 2 and running() == 2  # the waiting jobs brought up the second replica, which took some
    serve.delete("slow")
