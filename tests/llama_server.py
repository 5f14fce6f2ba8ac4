"""Start llama-cpp-python's OpenAI-compatible server on 127.0.0.1 for the slow HTTP tests.

``python -m llama_cpp.server`` serves a GGUF file at ``/v1/completions``; it takes text
prompts only and ignores ``n`` (so the tests use ``prompt_format="text"`` and one sample per
request). The server listens on loopback only, on a free port, and is stopped (terminate, then
kill) when the context ends; its output goes to a log file whose tail a start failure shows.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"


def available() -> bool:
    """Whether llama-cpp-python (with its server extra) is installed."""
    return (importlib.util.find_spec("llama_cpp") is not None
            and importlib.util.find_spec("uvicorn") is not None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def llama_server(gguf: Path, log: Path, *, timeout: float = 180.0, threads: int = 1,
                 n_ctx: int = 2048) -> Iterator[str]:
    """Serve ``gguf`` on 127.0.0.1; yields the base URL once ``/v1/models`` answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST,
           "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--logits_all", "true", "--verbose", "false"]
    url = f"http://{HOST}:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}:\n"
                                       + log.read_text(errors="replace")[-3000:])
                try:
                    with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
                        if json.load(resp).get("data"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not answer in {timeout:.0f} s:\n"
                                       + log.read_text(errors="replace")[-3000:])
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
