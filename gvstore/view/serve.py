"""``gvstore view --serve``: the bundle over HTTP on this machine (Python's ``http.server``).

The bundle needs no server (it opens from ``file://``); serving it helps where a browser runs
elsewhere than the files (a remote machine through an SSH tunnel) or where a browser's
``file://`` rules are stricter. The server binds to ``127.0.0.1`` unless told otherwise,
serves only the bundle's folder (``SimpleHTTPRequestHandler`` with ``directory=``, which
refuses paths outside it), and logs nothing (the library does not print).
"""

from __future__ import annotations

import errno
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gvstore.errors import GvstoreError
from gvstore.view.bundle import MARKER

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class _Quiet(SimpleHTTPRequestHandler):
    """The standard handler, without its request log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        return


def server(folder: Path | str, host: str = DEFAULT_HOST,
           port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A server of the bundle in ``folder`` (not started: call ``serve_forever``); port 0
    takes a free port (``server_address[1]`` says which)."""
    folder = Path(folder)
    if not (folder / MARKER).is_file() or not (folder / "index.html").is_file():
        raise GvstoreError(f"{folder} holds no viewer bundle (write one with gvstore view)")
    if not 0 <= port <= 65535:
        raise GvstoreError(f"port {port} is not a TCP port (0 to 65535; 0: any free port)")
    handler = partial(_Quiet, directory=str(folder.resolve()))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise GvstoreError(f"port {port} on {host} is in use; choose another with --port "
                               "(0: any free port)") from None
        raise GvstoreError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def url(srv: ThreadingHTTPServer) -> str:
    """The address a browser opens for ``srv``."""
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}/index.html"
