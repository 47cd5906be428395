"""demo.server: the listening socket and the page's routes (the served page itself: test_demo.py, over HTTP)."""

from __future__ import annotations

import pytest

from harness.demo import server
from harness.errors import HarnessError


def test_port_zero_listens_on_a_free_port_and_a_taken_port_is_one_line():
    first = server.bind("127.0.0.1", 0)
    try:
        host, port = first.getsockname()[:2]
        assert host == "127.0.0.1" and port > 0
        # SO_REUSEADDR lets a second bind through only where nobody listens: the first socket does.
        with pytest.raises(HarnessError, match=rf"cannot listen on 127.0.0.1:{port} \(.*\); choose another --port"):
            server.bind("127.0.0.1", port)
    finally:
        first.close()


def test_the_page_and_its_endpoints_are_routed():
    class Engine:  # create_app reads the run's description once; the routes ask the engine per request
        def info(self):
            return {"run": "0123456789abcdef"}

    paths = {getattr(route, "path", None) for route in server.create_app(Engine()).routes}
    assert {"/", "/static/{name}", "/api/info", "/api/neighbours", "/api/compare"} <= paths, paths


def test_a_loopback_demo_answers_its_own_address_and_localhost_only():
    assert server.allowed_hosts("127.0.0.1", 8000) == {"127.0.0.1:8000", "localhost:8000"}
    assert server.allowed_hosts("::1", 8001) == {"[::1]:8001", "localhost:8001"}
    assert server.allowed_hosts("192.168.1.5", 80) == {"192.168.1.5:80"}
    assert server.allowed_hosts("0.0.0.0", 8000) is None  # every interface: the user chose to serve the network
