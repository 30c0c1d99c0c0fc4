"""The test helpers' port choice: no other process's port-0 bind or outgoing connection, and no other xdist
worker, can take a port between free_port() and the server's own bind."""

from __future__ import annotations

import socket
from itertools import combinations

import app_process
from app_process import FIRST_TEST_PORT, ephemeral_ports_start, free_port


def test_free_port_lies_below_the_ephemeral_range_and_skips_held_ports(monkeypatch):
    ephemeral_start = ephemeral_ports_start()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        assert taken >= ephemeral_start
        free = free_port()
        assert FIRST_TEST_PORT <= free < ephemeral_start
        monkeypatch.setattr(app_process, "_PORTS", iter([taken, free]))
        assert free_port() == free


def test_each_worker_has_ports_of_its_own(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    stripes = []
    for worker in range(3):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        stripes.append(set(app_process._port_stripe()))
    assert all(len(stripe) > 1000 for stripe in stripes)
    assert all(not (one & other) for one, other in combinations(stripes, 2))
