"""A two-node Ray cluster on this machine for tests: ray.cluster_utils.Cluster with both nodes on the loopback
address, one CPU and a small object store each, no dashboard. `two_node_cluster()` starts it, connects this
process and yields the address; leaving it shuts down Serve, the connection and both nodes. The `ray_cluster`
fixture (module scope) wraps it: `from ray_cluster import ray_cluster` in a test file.

Ray turns 127.0.0.1 into the machine's network address before connecting, and reads whether it may do that
when it is imported. `LOOPBACK_ENV` keeps it on loopback: it is set in os.environ while the cluster runs, so
processes started meanwhile (app.py --ray-address …) inherit it, and the flag Ray already read is patched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

LOOPBACK = "127.0.0.1"
OBJECT_STORE_BYTES = 150 * 2**20
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Ray gives the GCS 30 s to write its port file; on the busy 2-core CI machine a retried start once took longer.
CLUSTER_ENV = {**LOOPBACK_ENV, "RAY_gcs_server_port_wait_time_s": "120"}
STARTUP_TIMEOUTS = ("timed out during startup", "Timed out waiting for file")  # Ray's words: a raylet, a port file


@contextlib.contextmanager
def two_node_cluster(cpus_per_node: int = 1) -> Iterator[str]:
    """Start a head and one worker node on 127.0.0.1, connect to them, and yield the cluster's address."""
    ray = pytest.importorskip("ray")
    from ray import serve
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        raise RuntimeError("This process is already connected to Ray; leave that cluster first")
    node = {"num_cpus": cpus_per_node, "object_store_memory": OBJECT_STORE_BYTES, "node_ip_address": LOOPBACK}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CLUSTER_ENV.items():
            patch.setenv(name, value)
        patch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
        cluster = _started(Cluster, node)
        try:
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
            yield cluster.address
        finally:
            if ray.is_initialized():
                serve.shutdown()
                ray.shutdown()
            cluster.shutdown()


def _started(cluster_class, node: dict):
    """A Cluster with its head node up and a worker node started (it joins while this process connects). On a
    loaded machine Ray sometimes gives up on a node's raylet after its fixed 30 s ("timed out during startup": the
    head's or the worker node's, once in several suite runs on the busy 2-core CI machine), or on the GCS's port
    file: then both start once more, with a GCS of their own, so a late raylet of the first try can't join. What
    the first try left running, Ray stops when this process ends."""
    try:
        return _head_and_worker(cluster_class, node)
    except Exception as exc:
        if not any(words in str(exc) for words in STARTUP_TIMEOUTS):
            raise
    return _head_and_worker(cluster_class, node)


def _head_and_worker(cluster_class, node: dict):
    cluster = cluster_class(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(wait=False, **node)
    except BaseException:
        cluster.shutdown()
        raise
    return cluster


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """The address of a two-node loopback Ray cluster this process is connected to."""
    with two_node_cluster() as address:
        yield address
