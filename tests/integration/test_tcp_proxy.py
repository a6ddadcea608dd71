"""The fault tests' TCP proxy forwards, cuts every connection on stop() and serves again after start()."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

from tests.integration.tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def echo_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address
    server.shutdown()
    server.server_close()


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(1024)


def test_forwards_cuts_live_connections_refuses_new_ones_and_recovers(echo_server) -> None:
    with TcpProxy(echo_server) as proxy:
        live = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert _roundtrip(live, b"hello") == b"hello"
        proxy.stop()
        assert live.recv(1024) == b""  # the open connection was cut, not left hanging
        live.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        proxy.start()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            assert _roundtrip(again, b"back") == b"back"
    assert proxy.open_connections == 0
