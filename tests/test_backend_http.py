"""The ``openai`` back end (an HTTP client for OpenAI-compatible servers).

The fast tests run the client against a small stdlib HTTP server on 127.0.0.1 (``FakeServer``)
that answers ``/v1/models`` and ``/v1/completions`` with made-up but deterministic texts and
log-probabilities, fails on request (429, 400), and counts requests in flight. They test what
the client sends, how it spreads, retries and bounds requests, and how it reads answers; the
tokenizer is a fake too (one token per character), so no model is loaded. ``RawServer`` (also on
127.0.0.1) misbehaves on purpose: it stalls, trickles, streams 300 MB or redirects, to test the
time and size bounds; the refusal of a key over plain HTTP needs no server at all.

The slow tests (``-m slow``) start llama-cpp-python's real server on 127.0.0.1 with the
embedded SmolLM2 GGUF and check sampling, seeds and log-likelihoods end to end, and the
log-likelihoods against the ``transformers`` back end.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gvstore.backends import LoglikRequest, SampleRequest, get_backend
from gvstore.backends.completions import completion_body, loglik_from_text, loglik_from_tokens
from gvstore.backends.hf import batch_seed
from gvstore.backends.http import OpenAIBackend
from gvstore.backends.transport import normalise_urls
from gvstore.errors import GvstoreError
from gvstore.models import ModelSpec
from gvstore.records import Sampling

FAKE_MODEL = ModelSpec(name="fake", source="hub", hub_id="fake/fake", kind="instruct")
SP = Sampling(temperature=0.7, top_p=0.9, top_k=0, max_tokens=5, stop=("\n",))


class FakeTokenizer:
    """One token per character (its code point); BOS is 1, EOS 0."""

    chat_template = "fake"
    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(ch) for ch in text]

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = True) -> str:
        return f"<u>{messages[0]['content']}</u><a>"


def fake_logprob(token: str | int) -> float:
    """The fake model's log-probability of a token (any deterministic function will do)."""
    t = token if isinstance(token, int) else sum(map(ord, token))
    return -((t % 7) + 1) / 10


class FakeServer:
    """A stdlib OpenAI-compatible server on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, *, fail: int = 0, status: int = 429, delay: float = 0.0,
                 ignore_n: bool = False) -> None:
        self.fail, self.status, self.delay, self.ignore_n = fail, status, delay, ignore_n
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.posts: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "fake-model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.posts.append(body)
                    failing = server.fail > 0
                    server.fail -= 1 if failing else 0
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(server.delay)
                # Out of flight before the answer leaves, so the client cannot send its next
                # request before this one is counted out.
                with server.lock:
                    server.in_flight -= 1
                if failing:
                    self._send(server.status, {"error": {"message": "try later"}})
                else:
                    self._send(200, server.answer(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body["prompt"]
        if body.get("echo"):
            # token ids come back as one-character tokens; text is cut at word starts
            tokens = ([chr(t) for t in prompt] if isinstance(prompt, list)
                      else re.findall(r"\s*\S+|\s+$", prompt))
            values: list[float | None] = [None] + [
                fake_logprob(t if isinstance(prompt, str) else ord(t)) for t in tokens[1:]]
            return {"choices": [{"index": 0, "text": "".join(tokens) + "!", "finish_reason":
                                 "length", "logprobs": {"tokens": tokens + ["!"],
                                                        "token_logprobs": values + [-0.5]}}],
                    "usage": {"prompt_tokens": len(tokens), "completion_tokens": 1}}
        n = 1 if self.ignore_n else body["n"]
        choices = [{"index": i, "text": f"s{body['seed']}-{i}",
                    "finish_reason": "length" if body["max_tokens"] < 3 else "stop"}
                   for i in range(n)]
        return {"choices": choices[::-1],  # out of order, as servers may send them
                "usage": {"completion_tokens": 3 * n}}

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def client(urls: str | list[str], **kw: Any) -> OpenAIBackend:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 10.0)
    return OpenAIBackend(FAKE_MODEL, base_urls=urls, tokenizer=FakeTokenizer(), **kw)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as s:
        yield s


def reqs(n: int, prompt: str = "2+2?", sp: Sampling = SP) -> list[SampleRequest]:
    return [SampleRequest(prompt, sp, seed=100 + i) for i in range(n)]


# ---- what is sent and how answers are read --------------------------------------------------


def test_sample_sends_rendered_token_ids_and_reads_answers(server: FakeServer) -> None:
    b = client(server.url)
    try:
        out = b.sample(reqs(3))
    finally:
        b.close()
    assert [s.text for s in out] == ["s100-0", "s101-0", "s102-0"]
    assert all(s.n_tokens == 3 and s.finish_reason == "stop" for s in out)  # usage, n=1
    body = server.posts[0]
    # The chat template is rendered here; an instruct prompt gets no extra BOS.
    assert body["prompt"] == [ord(c) for c in "<u>2+2?</u><a>"]
    assert {k: body[k] for k in ("model", "n", "top_k", "top_p", "max_tokens", "stop")} == {
        "model": "fake-model", "n": 1, "top_k": -1, "top_p": 0.9, "max_tokens": 5,
        "stop": ["\n"]}
    assert sorted(p["seed"] for p in server.posts) == [100, 101, 102]
    assert b.calls == 3


def test_text_prompts_and_extra_body(server: FakeServer) -> None:
    b = client(server.url, prompt_format="text", extra_body={"repeat_penalty": 1.0},
               served_model_name="m", logprobs=2, top_k_off=0)
    try:
        b.sample(reqs(1, sp=Sampling(max_tokens=2, top_k=40)) + reqs(1))
    finally:
        b.close()
    # The two requests run concurrently: tell them apart by what they asked, not by order.
    assert len(server.posts) == 2
    body = next(p for p in server.posts if p["max_tokens"] == 2)
    other = next(p for p in server.posts if p is not body)
    assert body["prompt"] == "<u>2+2?</u><a>"
    assert (body["model"], body["top_k"], body["repeat_penalty"], body["logprobs"]) == (
        "m", 40, 1.0, 2)
    assert other["max_tokens"] != 2
    assert other["top_k"] == 0  # "no cut", as llama.cpp spells it


def test_requests_spread_round_robin() -> None:
    with FakeServer() as s1, FakeServer() as s2:
        b = client([s1.url, s2.url + "/v1/"], served_model_name="m")
        try:
            b.sample(reqs(8))
        finally:
            b.close()
        assert (len(s1.posts), len(s2.posts)) == (4, 4)


def test_identical_requests_merge_into_n(server: FakeServer) -> None:
    b = client(server.url, max_samples_per_request=3)
    try:
        out = b.sample(reqs(4))
    finally:
        b.close()
    assert sorted(p["n"] for p in server.posts) == [1, 3]
    merged = next(p for p in server.posts if p["n"] == 3)
    assert merged["seed"] == batch_seed([100, 101, 102])
    assert out[3].text == "s103-0"
    # several samples in one answer: tokens counted by tokenising each text again
    assert [s.n_tokens for s in out[:3]] == [len(s.text) for s in out[:3]]
    assert [s.text[-2:] for s in out[:3]] == ["-0", "-1", "-2"]  # ordered by index


def test_a_server_that_ignores_n_is_an_error() -> None:
    with FakeServer(ignore_n=True) as s:
        b = client(s.url, max_samples_per_request=2)
        try:
            with pytest.raises(GvstoreError, match="ignores n"):
                b.sample(reqs(2))
        finally:
            b.close()


def test_greedy_requests_are_never_merged(server: FakeServer) -> None:
    b = client(server.url, max_samples_per_request=4)
    try:
        b.sample(reqs(3, sp=Sampling(temperature=0.0)))
    finally:
        b.close()
    assert [p["n"] for p in server.posts] == [1, 1, 1]
    with pytest.raises(GvstoreError, match="greedy"):
        completion_body("m", "x", Sampling(temperature=0.0), n=2, seed=0)


# ---- retries, errors, concurrency ---------------------------------------------------------


def test_429_twice_then_answered() -> None:
    with FakeServer(fail=2) as s:
        b = client(s.url, served_model_name="m")
        try:
            out = b.sample(reqs(1))
        finally:
            b.close()
        assert out[0].text == "s100-0"
        assert len(s.posts) == 3 and b.attempts == 3


def test_5xx_after_the_last_retry_is_a_clear_error() -> None:
    with FakeServer(fail=100, status=503) as s:
        b = client(s.url, served_model_name="m", max_retries=2)
        try:
            with pytest.raises(GvstoreError, match=r"failed 3 times \(last: HTTP 503"):
                b.sample(reqs(1))
        finally:
            b.close()
        assert len(s.posts) == 3


def test_400_is_not_retried() -> None:
    with FakeServer(fail=100, status=400) as s:
        b = client(s.url, served_model_name="m")
        try:
            with pytest.raises(GvstoreError, match="refused the request: HTTP 400"):
                b.sample(reqs(1))
        finally:
            b.close()
        assert len(s.posts) == 1


def test_connection_refused_is_retried_then_an_error() -> None:
    with FakeServer() as s:
        url = s.url  # a port that was just free: nothing listens once the server stops
    b = client(url, served_model_name="m", max_retries=1)
    try:
        with pytest.raises(GvstoreError, match="failed 2 times.*are the servers up"):
            b.sample(reqs(1))
    finally:
        b.close()


def test_retries_move_to_the_next_server() -> None:
    with FakeServer() as s:
        dead = s.url
    with FakeServer() as s2:
        # One at a time, so tries alternate: each request's first try meets the dead URL,
        # its retry the live one.
        b = client([dead, s2.url], served_model_name="m", concurrency=1)
        try:
            out = b.sample(reqs(4))
        finally:
            b.close()
        assert len(out) == 4 and len(s2.posts) == 4


def test_requests_in_flight_are_bounded() -> None:
    with FakeServer(delay=0.05) as s:
        b = client(s.url, served_model_name="m", concurrency=3)
        try:
            b.sample(reqs(24))
        finally:
            b.close()
        assert len(s.posts) == 24
        assert 2 <= s.max_in_flight <= 3


def test_usable_inside_a_running_event_loop(server: FakeServer) -> None:
    import asyncio

    b = client(server.url)

    async def main() -> str:
        return b.sample(reqs(1))[0].text  # blocking call from inside a loop: own thread

    try:
        assert asyncio.run(main()) == "s100-0"
    finally:
        b.close()
    with pytest.raises(GvstoreError, match="closed"):
        b.sample(reqs(1))


# ---- bounds: time per try and per request, answer size, keys over plain HTTP ----------------


class RawServer:
    """A stdlib HTTP server on 127.0.0.1 whose every request is answered by ``respond(h)``
    (``h``: the handler). It counts the body bytes it managed to send (``sent``) and lets a
    stalled handler go (``release``) when it stops."""

    def __init__(self, respond: Any) -> None:
        self.sent = 0
        self.requests = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._go()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._go()

            def _go(self) -> None:
                with server.lock:
                    server.requests += 1
                try:
                    respond(self)
                except OSError:  # the client hung up: what a cap or a timeout should do
                    self.close_connection = True

            def write(self, data: bytes) -> None:
                self.wfile.write(data)
                self.wfile.flush()
                with server.lock:
                    server.sent += len(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # the handlers reach this object (its release event) through their server
        self.httpd.raw = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def headers(h: Any, status: int = 200, **extra: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    for k, v in extra.items():
        h.send_header(k.replace("_", "-"), v)
    h.end_headers()


def released(h: Any, wait: float = 0.0) -> bool:
    """Whether the test is over (the server stopping), after waiting up to ``wait`` s."""
    return bool(h.server.raw.release.wait(wait))


def stall(h: Any) -> None:
    """Accept the request and never answer (until the test ends)."""
    released(h, 30)


def test_defaults_bound_a_request_to_minutes_not_an_hour() -> None:
    b = OpenAIBackend(FAKE_MODEL, base_urls="http://127.0.0.1:9", tokenizer=FakeTokenizer())
    b.close()
    # Per try: a 512-token completion (the study's max_tokens) at 5 tokens/s takes 102 s, and
    # its prefill; one request ends after 300 s however many tries are left (it was 600 s x 6
    # tries plus back-off: over an hour).
    lim = b.limits
    assert (lim.timeout, lim.deadline, lim.connect_timeout, lim.max_retries) == (120.0, 300.0,
                                                                                 10.0, 5)
    assert lim.max_response_bytes == 16 * 1024 * 1024


def test_a_stalled_server_costs_the_per_try_timeout_per_try() -> None:
    with RawServer(stall) as s:
        b = client(s.url, served_model_name="m", timeout=0.4, max_retries=1, deadline=30.0)
        t0 = time.monotonic()
        try:
            with pytest.raises(GvstoreError) as err:
                b.sample(reqs(1))
        finally:
            b.close()
        took = time.monotonic() - t0
    msg = str(err.value)
    # 2 tries of 0.4 s and one back-off of at most 0.01 s: 0.8 s, well before the deadline
    assert 0.75 <= took < 2.0
    assert "failed 2 times" in msg and f"no answer from {s.url}/v1/completions within 0.4" in msg
    assert "\n" not in msg and s.requests == 2


def test_the_deadline_ends_a_request_whatever_its_retries() -> None:
    with RawServer(stall) as s:
        b = client(s.url, served_model_name="m", timeout=0.5, deadline=1.2, max_retries=50)
        t0 = time.monotonic()
        try:
            with pytest.raises(GvstoreError, match=r"within the deadline of 1\.2 s \(3 tries "
                                                   r"of at most 0\.5 s") as err:
                b.sample(reqs(1))
        finally:
            b.close()
        took = time.monotonic() - t0
    # tries of 0.5, 0.5 and the 0.2 s left (back-offs of ~0.01 s included): 1.2 s, not 51 tries
    assert 1.15 <= took < 2.5
    assert s.requests == 3 and s.url in str(err.value)


def test_the_timeout_covers_a_body_that_trickles() -> None:
    def trickle(h: Any) -> None:  # headers at once, then one byte every 50 ms
        headers(h, Content_Length="100000")
        for _ in range(100000):
            if released(h, 0.05):
                return
            h.write(b" ")

    with RawServer(trickle) as s:
        b = client(s.url, served_model_name="m", timeout=0.5, max_retries=0)
        t0 = time.monotonic()
        try:
            with pytest.raises(GvstoreError, match="no answer from .* within 0.5"):
                b.sample(reqs(1))
        finally:
            b.close()
        assert time.monotonic() - t0 < 1.5
        assert s.sent < 100  # ~10 of 100000 bytes in 0.5 s: the read was cut, not waited out


CAP = 1024 * 1024
HUGE = 300 * 1000 * 1000


def stream(h: Any, total: int = HUGE) -> None:
    """Write ``total`` bytes of JSON-looking filler in 1 MiB chunks (until the client goes)."""
    chunk = b" " * CAP
    for _ in range(total // CAP):
        if released(h):
            return
        h.write(chunk)


def claimed_huge(h: Any) -> None:
    headers(h, Content_Length=str(HUGE))
    stream(h)


def chunked_huge(h: Any) -> None:  # no length announced: the cap must count what it reads
    headers(h, Transfer_Encoding="chunked")
    chunk = b"%x\r\n" % (64 * 1024) + b" " * (64 * 1024) + b"\r\n"
    for _ in range(HUGE // len(chunk)):
        if released(h):
            return
        h.write(chunk)


@pytest.mark.parametrize("respond", [claimed_huge, chunked_huge])
def test_an_answer_over_the_cap_is_an_error_and_never_read_whole(respond: Any) -> None:
    import resource

    with RawServer(respond) as s:
        b = client(s.url, served_model_name="m", max_response_bytes=CAP, max_retries=3)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, the peak so far
        try:
            with pytest.raises(GvstoreError) as err:
                b.sample(reqs(1))
        finally:
            b.close()
        time.sleep(0.2)  # let the server notice the hang-up
        sent = s.sent
    msg = str(err.value)
    assert s.url in msg and f"{CAP} bytes" in msg and "max_response_bytes" in msg
    assert "\n" not in msg
    assert s.requests == 1  # not retried: the server would send it again
    # What left the server before the client hung up: the cap plus what the kernel's socket
    # buffers hold (a few MiB on loopback), not 300 MB.
    assert sent < 40 * CAP
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
    assert grew < 100 * 1024  # KiB: far below the 300 MB a whole read would need


def test_an_answer_at_the_cap_is_read_and_one_byte_over_is_not() -> None:
    answer = {"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
              "usage": {"completion_tokens": 1}}
    raw = json.dumps(answer).encode()
    raw += b" " * (2048 - len(raw))  # exactly 2048 bytes of valid JSON

    def exact(h: Any) -> None:
        headers(h, Content_Length=str(len(raw)))
        h.write(raw)

    def unannounced(h: Any) -> None:  # the same body, its end marked by closing
        h.close_connection = True
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.write(raw)

    for respond in (exact, unannounced):
        with RawServer(respond) as s:
            b = client(s.url, served_model_name="m", max_response_bytes=2048)
            try:
                assert b.sample(reqs(1))[0].text == "ok"
            finally:
                b.close()
            b = client(s.url, served_model_name="m", max_response_bytes=2047)
            try:
                with pytest.raises(GvstoreError, match=r"(2048 bytes, over|more than 2047 "
                                                       r"bytes).*max_response_bytes"):
                    b.sample(reqs(1))
            finally:
                b.close()


def test_an_error_answer_is_read_only_in_part_and_named_on_one_line() -> None:
    def bad(h: Any) -> None:
        headers(h, 400, Content_Length=str(HUGE))
        h.write(b"line one\nline two\n")
        stream(h)

    with RawServer(bad) as s:
        b = client(s.url, served_model_name="m")
        try:
            with pytest.raises(GvstoreError) as err:
                b.sample(reqs(1))
        finally:
            b.close()
        time.sleep(0.2)
        assert s.sent < 40 * CAP
    msg = str(err.value)
    assert msg.startswith(f"{s.url}/v1/completions refused the request: HTTP 400: "
                          "'line one\\nline two\\n")
    assert "\n" not in msg


def test_redirects_are_not_followed() -> None:
    with FakeServer() as elsewhere:
        def moved(h: Any) -> None:
            headers(h, 307, Location=elsewhere.url + "/v1/completions", Content_Length="0")

        with RawServer(moved) as s:
            b = client(s.url, served_model_name="m", api_key="sk-secret")
            try:
                with pytest.raises(GvstoreError, match="HTTP 307 .redirect to .* not followed"):
                    b.sample(reqs(1))
            finally:
                b.close()
        assert elsewhere.posts == []  # the key never went to the other host


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://gpu1:8000",
                                 "http://127.0.0.1:8000,http://[fe80::1]:8000",
                                 "http://localhost.example.com", "http://a.localhost:8000",
                                 "http://0.0.0.0:8000"])
def test_a_key_over_plain_http_off_this_machine_is_refused_before_connecting(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*a: Any, **k: Any) -> None:
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.delenv("GVSTORE_OPENAI_ALLOW_HTTP_KEY", raising=False)
    with pytest.raises(GvstoreError, match="refusing to send the API key .api_key. over plain "
                                           "HTTP to http://") as err:
        client(url, api_key="sk-secret")
    assert "sk-secret" not in str(err.value) and "\n" not in str(err.value)
    # a key from the environment too (the user's real OpenAI key, most likely)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with pytest.raises(GvstoreError, match=r"\$OPENAI_API_KEY") as err:
        client(url)
    assert "sk-from-env" not in str(err.value)


def test_the_cli_refuses_a_key_over_plain_http_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gvstore.cli.app import app

    monkeypatch.setenv("GVSTORE_OPENAI_BASE_URLS", "http://10.0.0.5:8000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.delenv("GVSTORE_OPENAI_ALLOW_HTTP_KEY", raising=False)
    res = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "generate", "--task",
                                   "arith", "--prompts", "1", "-n", "1", "--backend", "openai",
                                   "-q"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "refusing to send the API key ($OPENAI_API_KEY) over plain " \
        "HTTP to http://10.0.0.5:8000/v1" in lines[0]
    assert "sk-secret" not in res.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.3.2.1:8000",
                                 "http://[::1]:8000", "http://localhost:8000",
                                 "http://LOCALHOST.:8000", "http://[::ffff:127.0.0.1]:8000",
                                 "https://10.0.0.5:8000", "https://gpu1"])
def test_a_key_is_sent_to_loopback_or_over_https(url: str) -> None:
    client(url, api_key="sk-secret").close()


def test_a_key_over_plain_http_when_allowed_and_no_key_at_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client("http://10.0.0.5:8000").close()  # no key, nothing to leak
    client("http://10.0.0.5:8000", api_key="sk-x", allow_http_key=True).close()
    monkeypatch.setenv("GVSTORE_OPENAI_ALLOW_HTTP_KEY", "1")
    client("http://10.0.0.5:8000", api_key="sk-x").close()
    with pytest.raises(GvstoreError, match="refusing"):
        client("http://10.0.0.5:8000", api_key="sk-x", allow_http_key=False)


def test_the_key_reaches_a_loopback_server() -> None:
    seen: list[str | None] = []

    def echo_auth(h: Any) -> None:
        seen.append(h.headers.get("Authorization"))
        raw = json.dumps({"data": [{"id": "m"}]}).encode()
        headers(h, Content_Length=str(len(raw)))
        h.write(raw)

    with RawServer(echo_auth) as s:
        b = client(s.url, api_key="sk-local")
        try:
            b.served_model_name = None
            b.served_model()
        finally:
            b.close()
    assert seen == ["Bearer sk-local"]


@pytest.mark.parametrize(("option", "value", "words"), [
    ("timeout", 0, r"timeout must be in \(0, 3600\] s, got 0"),
    ("timeout", 4000.0, r"timeout must be in \(0, 3600\]"),
    ("timeout", float("nan"), "timeout must be"),
    ("timeout", "10", "timeout must be"),
    ("deadline", 5.0, r"deadline must be in \[10, 86400\] s \(at least timeout\), got 5.0"),
    ("connect_timeout", 0.0, r"connect_timeout must be in \(0, 3600\] s, got 0.0"),
    ("max_response_bytes", 100, r"max_response_bytes must be an integer in \[1024, "),
    ("max_response_bytes", 2 ** 31, "max_response_bytes must be"),
    ("max_retries", -1, r"max_retries must be an integer in \[0, 100\], got -1"),
    ("max_retries", True, "max_retries must be"),
    ("concurrency", 0, "concurrency must be"),
    ("backoff", 60.0, r"backoff must be in \[0, 30\] s \(at most max_backoff\)"),
    ("max_backoff", -1.0, "max_backoff must be"),
])
def test_settings_out_of_bounds_are_one_line_errors(option: str, value: Any, words: str) -> None:
    with pytest.raises(GvstoreError, match=words) as err:
        client("http://127.0.0.1:8000", **{option: value})
    assert str(err.value).startswith(f"the openai back end's {option} must")
    assert "\n" not in str(err.value)


def test_a_url_with_credentials_is_refused() -> None:
    with pytest.raises(GvstoreError, match=r"http://\.\.\.@h holds a user name") as err:
        normalise_urls("http://me:pw@h:8000")
    assert "pw" not in str(err.value)
    with pytest.raises(GvstoreError, match="no host"):
        normalise_urls("http://:8000")
    with pytest.raises(GvstoreError, match="not a valid URL"):
        normalise_urls("http://h:port")


# ---- log-likelihoods ----------------------------------------------------------------------


def test_loglik_with_token_ids_scores_every_continuation_token(server: FakeServer) -> None:
    b = client(server.url)
    try:
        out = b.loglik([LoglikRequest("Is it?", " Correct"), LoglikRequest("Is it?", ""),
                        LoglikRequest("Is it?", " Incorrect")])
    finally:
        b.close()
    for (ll, n), cont in zip(out, [" Correct", "", " Incorrect"], strict=True):
        assert n == len(cont)
        assert ll == pytest.approx(sum(fake_logprob(ord(c)) for c in cont))
    assert len(server.posts) == 2  # an empty continuation costs no request
    body = server.posts[0]
    assert (body["echo"], body["logprobs"], body["max_tokens"]) == (True, 1, 1)
    assert body["prompt"][-len(" Correct"):] == [ord(c) for c in " Correct"] or \
        body["prompt"][-len(" Incorrect"):] == [ord(c) for c in " Incorrect"]


def test_loglik_with_text_finds_the_continuation_tokens(server: FakeServer) -> None:
    b = client(server.url, prompt_format="text")
    try:
        [(ll, n)] = b.loglik([LoglikRequest("Is it?", " Not correct")])
        with pytest.raises(GvstoreError, match="boundary"):
            b.loglik([LoglikRequest("Is it", "correct")])  # "<a>correct": one server token
    finally:
        b.close()
    assert n == 2
    assert ll == pytest.approx(fake_logprob(" Not") + fake_logprob(" correct"))


def test_loglik_parsers_check_the_answer() -> None:
    resp = {"choices": [{"index": 0, "logprobs": {"tokens": ["a", "b", "c", "!"],
                                                  "token_logprobs": [None, -1.0, -2.0, -9.0]}}],
            "usage": {"completion_tokens": 1}}
    assert loglik_from_tokens(resp, 1, 2) == (-3.0, 2)
    assert loglik_from_text(resp, "bc") == (-3.0, 2)
    with pytest.raises(GvstoreError, match="echoed 3 prompt tokens, 4 sent"):
        loglik_from_tokens(resp, 2, 2)
    with pytest.raises(GvstoreError, match="at least one prompt token"):
        loglik_from_tokens(resp, 0, 3)
    with pytest.raises(GvstoreError, match="no echoed"):
        loglik_from_tokens({"choices": [{"text": "x"}], "usage": {}}, 1, 1)


def test_base_urls() -> None:
    assert normalise_urls("http://127.0.0.1:8000, http://127.0.0.1:8001/v1/") == [
        "http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1"]
    with pytest.raises(GvstoreError, match="http://"):
        normalise_urls(["127.0.0.1:8000"])
    with pytest.raises(GvstoreError, match="at least one"):
        normalise_urls("")


def test_registered_as_openai_with_urls_from_the_environment(
        server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI passes only batch_size and models_dir: the URLs come from the environment.
    monkeypatch.setenv("GVSTORE_OPENAI_BASE_URLS", server.url)
    b = get_backend("openai", FAKE_MODEL, tokenizer=FakeTokenizer(), batch_size=8,
                    models_dir=Path("unused"))
    try:
        assert b.name == "openai" and b.model == FAKE_MODEL
        assert b.sample(reqs(1))[0].text == "s100-0"
    finally:
        b.close()
    monkeypatch.delenv("GVSTORE_OPENAI_BASE_URLS")
    with pytest.raises(GvstoreError, match="GVSTORE_OPENAI_BASE_URLS"):
        OpenAIBackend(FAKE_MODEL, tokenizer=FakeTokenizer())


# ---- against a real server: llama-cpp-python serving the embedded SmolLM2 ------------------

try:
    from llama_server import available as _llama_available
    from llama_server import llama_server
except ImportError:  # pragma: no cover - run from another rootdir
    _llama_available = None  # type: ignore[assignment]

needs_llama = pytest.mark.skipif(
    _llama_available is None or not _llama_available(),
    reason="requires llama-cpp-python[server] (pip install 'llama-cpp-python[server]')")


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from gvstore.models import SMOLLM2, package_gguf

    log = tmp_path_factory.mktemp("llama") / "server.log"
    with llama_server(package_gguf(SMOLLM2), log) as url:
        yield url


@pytest.fixture(scope="module")
def smol(llama_url: str) -> Iterator[OpenAIBackend]:
    from gvstore.models import SMOLLM2

    # llama.cpp's server takes text prompts only, ignores n, and by default adds a repeat
    # penalty and min_p cut: turn those off so sampling is plain temperature/top-p.
    b = OpenAIBackend(SMOLLM2, base_urls=[llama_url], prompt_format="text", top_k_off=0,
                      concurrency=2, timeout=120.0, max_retries=1,
                      extra_body={"repeat_penalty": 1.0, "min_p": 0.0})
    yield b
    b.close()


@pytest.mark.slow
@needs_llama
def test_llama_sampling_is_seeded(smol: OpenAIBackend) -> None:
    sp = Sampling(temperature=1.0, top_p=1.0, max_tokens=12)
    batch = [SampleRequest("Name a colour.", sp, seed=s) for s in (1, 2, 3, 1)]
    first = smol.sample(batch)
    again = smol.sample(batch)
    assert [s.text for s in first] == [s.text for s in again]  # same seed, same text
    assert first[0].text == first[3].text
    assert len({s.text for s in first[:3]}) > 1  # other seeds, other texts
    for s in first:
        assert s.finish_reason in ("stop", "length") and 0 <= s.n_tokens <= 12
        assert s.finish_reason == "stop" or s.n_tokens == 12


@pytest.mark.slow
@needs_llama
def test_llama_refuses_n_clearly(llama_url: str) -> None:
    from gvstore.models import SMOLLM2

    b = OpenAIBackend(SMOLLM2, base_urls=llama_url, prompt_format="text", top_k_off=0,
                      max_samples_per_request=2, timeout=120.0, max_retries=1)
    try:
        with pytest.raises(GvstoreError, match="ignores n"):
            b.sample([SampleRequest("Hi", Sampling(max_tokens=4), seed=s) for s in (1, 2)])
    finally:
        b.close()


@pytest.mark.slow
@needs_llama
def test_llama_loglik_matches_transformers(smol: OpenAIBackend,
                                           prepared_models: Path) -> None:
    from gvstore.backends.hf import TransformersBackend
    from gvstore.models import SMOLLM2

    def normalised(ll_correct: float, ll_incorrect: float) -> float:  # the mc score
        return 1.0 / (1.0 + math.exp(ll_incorrect - ll_correct))

    prompt = "Is 2+2=4? Answer Correct or Incorrect.\nAnswer:"
    asked = [LoglikRequest(prompt, " Correct"), LoglikRequest(prompt, " Incorrect")]
    got = smol.loglik(asked)
    (lc, nc), (li, ni) = got
    assert (nc, ni) == (1, 2)  # " Incorrect" is two tokens: both scored
    assert lc < 0 and li < 0 and math.isfinite(lc) and math.isfinite(li)
    hf = TransformersBackend(SMOLLM2, models_dir=prepared_models, threads=1)
    try:
        ref = hf.loglik(asked)
    finally:
        hf.close()
    # Same weights (Q4_1), different arithmetic: llama.cpp multiplies quantised weights by
    # 8-bit-quantised activations, transformers by fp32 dequantised weights. Measured: the
    # two differ by 0.01-0.4 nats on such tokens (-10 to -17); a token scored at the wrong
    # position or left out would differ by several nats.
    for (a, na), (b, nb) in zip(got, ref, strict=True):
        assert na == nb
        assert a == pytest.approx(b, abs=0.6)
    assert normalised(lc, li) == pytest.approx(normalised(ref[0][0], ref[1][0]), abs=0.05)
