"""A tiny threaded echo server, with the bug its test catches: accepted sockets never closed.

``EchoServer(forget_to_close=True)`` keeps each accepted socket in its registry after the
client has gone: read() returns 0, the handler returns, and nobody calls close(). The
kernel keeps the socket in CLOSE_WAIT for as long as the program runs, and the client's
side waits in FIN_WAIT_2. The fix is one line in ``_echo``.
"""

from __future__ import annotations

import socket
import threading


class EchoServer:
    """Echoes every byte back on 127.0.0.1, on a port of its own (``self.port``)."""

    def __init__(self, forget_to_close: bool = False) -> None:
        self.forget_to_close = forget_to_close
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []   # the server's registry of clients
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the listener was closed
                return
            self.connections.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        while data := conn.recv(4096):
            conn.sendall(data)
        # read() returned 0: the client closed its side.
        if not self.forget_to_close:
            self.connections.remove(conn)
            conn.close()  # the fix: without it the socket stays in CLOSE_WAIT

    def close(self) -> None:
        """Stop listening and close whatever is left."""
        self.listener.close()
        for conn in self.connections:
            conn.close()
