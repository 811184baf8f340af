"""Serving the explore app: bind, print the URL with its token, open a browser, stop cleanly on Ctrl-C."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
import threading
import webbrowser
from typing import Any, TextIO

import uvicorn

__all__ = ["is_loopback", "make_token", "serve"]


def make_token() -> str:
    """A fresh random token for the URL (as Jupyter's): 32 bytes of secrets.token_urlsafe."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port). Raises OSError when it cannot bind."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(app: Any, sock: socket.socket, url: str, open_browser: bool, out: TextIO = sys.stdout) -> None:
    """Serve ``app`` on the bound ``sock`` until Ctrl-C (or SIGTERM): uvicorn's graceful shutdown, then return."""
    host = sock.getsockname()[0]
    if not is_loopback(host):
        print(
            f"advnets: warning: listening on {host}: anyone who can reach this machine on port "
            f"{sock.getsockname()[1]} and knows the token can use the server (plain HTTP, not encrypted)",
            file=sys.stderr,
        )
    print(f"advnets explore: open {url}", file=out, flush=True)
    print("(Ctrl-C stops the server)", file=out, flush=True)
    if open_browser:
        threading.Timer(0.5, lambda: webbrowser.open(url)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again
        pass
    print("advnets explore: stopped", file=out, flush=True)
