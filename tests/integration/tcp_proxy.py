"""A TCP forwarder the tests control: stop() is a server outage (listener and live connections closed)."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path


class TcpProxy:
    """Forward 127.0.0.1:<port> to an upstream address; stop() and start() again keep the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._running = threading.Event()
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Listen again: new connections reach the upstream."""
        if self._running.is_set():
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.05)
        self._listener = listener
        self._running.set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """An outage: refuse new connections and cut every open one (both directions)."""
        if not self._running.is_set():
            return
        self._running.clear()
        assert self._acceptor is not None and self._listener is not None
        self._acceptor.join()
        self._listener.close()
        with self._lock:
            live, self._live = self._live, set()
        for sock in live:
            _close(sock)

    @property
    def open_connections(self) -> int:
        """Sockets currently held (clients and upstreams both count)."""
        with self._lock:
            return len(self._live)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while self._running.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if not self._running.is_set():
                    _close(client)
                    _close(upstream)
                    return
                self._live.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._live.discard(source)
                self._live.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _free_port() -> int:
    """A free port below the ephemeral range: while the proxy is stopped, a client connecting to a port in
    that range can be given the same port as its own source and connect to itself (TCP self-connect)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
