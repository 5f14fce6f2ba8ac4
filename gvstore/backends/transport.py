"""The HTTP transport of the ``openai`` back end: servers, keys, limits and deadlines.

``Transport`` sends JSON requests to a fleet of servers in turn (round robin), at most
``concurrency`` in flight at once, from an asyncio loop that it runs in a thread of its own
(so it also works where the caller already runs a loop). A request that meets a 429 (or 408,
409, 425), a 5xx, a dropped connection or a timeout is sent again, to the next server, after
an exponential back-off with jitter (a ``Retry-After`` header is honoured); after
``max_retries`` retries a ``GvstoreError`` says what the last failure was. Other 4xx (and 3xx:
redirects are not followed) answers are errors at once. Each try is bounded by ``timeout``,
one request by ``deadline``, an answer's body by ``max_response_bytes`` (``Limits``, checked
against the bounds below). ``endpoints`` finds the URLs and the API key and refuses to send a
key over plain HTTP off this machine. What the requests say is ``gvstore.backends.completions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gvstore.errors import GvstoreError

T = TypeVar("T")
URLS_ENV = "GVSTORE_OPENAI_BASE_URLS"
"""Where the base URLs come from when none are given (the CLI passes none)."""
ALLOW_HTTP_KEY_ENV = "GVSTORE_OPENAI_ALLOW_HTTP_KEY"
"""Set to ``1`` to send an API key over plain HTTP to a host that is not loopback."""
RETRY_STATUS = frozenset({408, 409, 425, 429})
"""Statuses sent again (besides every 5xx): timeouts, conflicts and rate limits."""
ERROR_BODY_BYTES = 64 * 1024
"""How much of a non-200 answer is read (its start goes into the error message)."""
CHUNK_BYTES = 64 * 1024

# The defaults, and the bounds each setting is checked against (inclusive unless noted).
DEFAULT_TIMEOUT_S = 120.0
"""One try: a 512-token completion (the study's longest) at 5 tokens/s is 102 s; the rest is
for its prefill and a short wait in the server's queue."""
DEFAULT_DEADLINE_S = 300.0
"""One request, every try and back-off included."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""An answer of 512 tokens with ``logprobs`` is under 1 MiB; an echoed 8k-token prompt ~2 MiB."""
MAX_TIMEOUT_S = 3600.0
MAX_DEADLINE_S = 86400.0
MAX_RETRIES = 100
MAX_CONCURRENCY = 4096
MIN_RESPONSE_BYTES = 1024
MAX_RESPONSE_BYTES = 1024 ** 3


def _one_line(text: str, limit: int = 200) -> str:
    """The start of a server's text for an error message: newlines and control characters
    escaped (``repr``), so the message stays one line."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host, no port) is this machine: 127.0.0.0/8, ``::1`` (also
    as an IPv4-mapped address) or ``localhost``. Names are not resolved."""
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def normalise_urls(base_urls: Sequence[str] | str) -> list[str]:
    """Base URLs ending in ``/v1``; a string may hold several, comma-separated."""
    raw = base_urls.split(",") if isinstance(base_urls, str) else list(base_urls)
    urls = []
    for u in raw:
        u = u.strip().rstrip("/")
        if not u:
            continue
        if not u.startswith(("http://", "https://")):
            raise GvstoreError(f"base URL {u!r} must start with http:// or https://")
        try:
            parts = urlsplit(u)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError as exc:
            raise GvstoreError(f"base URL {u!r} is not a valid URL: {exc}") from exc
        if not parts.hostname:
            raise GvstoreError(f"base URL {u!r} has no host")
        if "@" in parts.netloc:
            # it would be printed in every error message; a key goes in api_key
            raise GvstoreError(f"base URL {parts.scheme}://...@{parts.hostname} holds a user "
                               "name or password: pass the key as api_key instead")
        urls.append(u if u.endswith("/v1") else u + "/v1")
    if not urls:
        raise GvstoreError("the openai back end needs at least one base URL (base_urls)")
    return urls


def check_key_transport(urls: Sequence[str], key_from: str, allow_http_key: bool) -> None:
    """Refuse to send an API key in clear text off this machine: with a key, every ``http://``
    URL must have a loopback host, unless ``allow_http_key``."""
    if allow_http_key:
        return
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise GvstoreError(
                f"refusing to send the API key ({key_from}) over plain HTTP to {u}: use "
                f"https://, a loopback address, or allow_http_key=True (${ALLOW_HTTP_KEY_ENV}=1)"
                " on a network you trust")


def _number(name: str, value: object, low: float, high: float, *, low_open: bool = False,
            unit: str = "") -> float:
    """``value`` as a float checked against [low, high] (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    v = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not ok or not (low < v <= high if low_open else low <= v <= high):
        lo = "(" if low_open else "["
        raise GvstoreError(f"the openai back end's {name} must be in {lo}{low:g}, {high:g}]"
                           f"{unit}, got {value!r}")
    return v


def _count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GvstoreError(f"the openai back end's {name} must be an integer in [{low}, {high}]"
                           f", got {value!r}")
    return value


@dataclass(frozen=True)
class Limits:
    """The bounds of the transport (see ``OpenAIBackend`` for each), checked by ``checked``."""

    concurrency: int = 8
    max_retries: int = 5
    timeout: float = DEFAULT_TIMEOUT_S
    deadline: float = DEFAULT_DEADLINE_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    backoff: float = 0.5
    max_backoff: float = 30.0

    @classmethod
    def checked(cls, *, concurrency: object, max_retries: object, timeout: object,
                deadline: object, connect_timeout: object, max_response_bytes: object,
                backoff: object, max_backoff: object) -> Limits:
        """The limits, each checked against its bounds (a one-line error naming it)."""
        conc = _count("concurrency", concurrency, 1, MAX_CONCURRENCY)
        retries = _count("max_retries", max_retries, 0, MAX_RETRIES)
        try_s = _number("timeout", timeout, 0, MAX_TIMEOUT_S, low_open=True, unit=" s")
        end_s = _number("deadline", deadline, try_s, MAX_DEADLINE_S,
                        unit=" s (at least timeout)")
        # (a try's connecting is bounded by the try's own time as well)
        connect_s = _number("connect_timeout", connect_timeout, 0, MAX_TIMEOUT_S,
                            low_open=True, unit=" s")
        cap = _count("max_response_bytes", max_response_bytes, MIN_RESPONSE_BYTES,
                     MAX_RESPONSE_BYTES)
        most = _number("max_backoff", max_backoff, 0, MAX_TIMEOUT_S, unit=" s")
        first = _number("backoff", backoff, 0, most, unit=" s (at most max_backoff)")
        return cls(conc, retries, try_s, end_s, connect_s, cap, first, most)


def endpoints(base_urls: Sequence[str] | str | None, api_key: str | None,
              allow_http_key: bool | None) -> tuple[list[str], str | None]:
    """The servers' base URLs (default ``$GVSTORE_OPENAI_BASE_URLS``) and the API key
    (default ``$OPENAI_API_KEY``), refusing a key over plain HTTP off this machine unless
    ``allow_http_key`` (default ``$GVSTORE_OPENAI_ALLOW_HTTP_KEY`` is ``1``)."""
    if base_urls is None:
        base_urls = os.environ.get(URLS_ENV, "")
        if not base_urls:
            raise GvstoreError(f"the openai back end needs base_urls, or ${URLS_ENV} set "
                               "to the servers' URLs (comma-separated)")
    urls = normalise_urls(base_urls)
    key_from = "api_key"
    if api_key is None and os.environ.get("OPENAI_API_KEY"):
        api_key, key_from = os.environ["OPENAI_API_KEY"], "$OPENAI_API_KEY"
    if allow_http_key is None:
        allow_http_key = os.environ.get(ALLOW_HTTP_KEY_ENV, "") == "1"
    if api_key:
        check_key_transport(urls, key_from, allow_http_key)
    return urls, api_key or None


class Transport:
    """JSON requests to ``urls`` in turn, within ``limits``, from a loop thread of its own."""

    def __init__(self, urls: list[str], api_key: str | None, limits: Limits) -> None:
        self.urls = urls
        self.api_key = api_key
        self.limits = limits
        self.attempts = 0  # HTTP requests sent, retries included
        self._next = 0
        self._jitter = random.Random()
        self._session: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="gvstore-openai", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise GvstoreError("the openai back end is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self) -> Any:
        import aiohttp

        if self._session is None:
            self._sem = asyncio.Semaphore(self.limits.concurrency)
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            # No session-wide timeout: each try gets its own (see request).
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(limit=self.limits.concurrency),
            )
        return self._session

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = min(self.limits.max_backoff, self.limits.backoff * 2 ** attempt)
        delay = delay / 2 + self._jitter.uniform(0, delay / 2)
        if retry_after:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own back-off
                delay = max(delay, min(float(retry_after), self.limits.max_backoff))
        return delay

    async def _read_capped(self, resp: Any, url: str, cap: int, *, strict: bool) -> bytes:
        """At most ``cap`` bytes of an answer's body, read in chunks. Over the cap (a declared
        ``Content-Length`` or the bytes streamed so far): an error with ``strict``, else the
        first ``cap`` bytes (for an error message). The rest is never read."""
        declared = resp.content_length
        if strict and declared is not None and declared > cap:
            raise GvstoreError(f"{url} answered {declared} bytes, over the limit of {cap} bytes "
                               "(max_response_bytes)")
        buf = bytearray()
        while len(buf) <= cap:
            chunk = await resp.content.read(min(CHUNK_BYTES, cap + 1 - len(buf)))
            if not chunk:
                return bytes(buf)
            buf += chunk
        if strict:
            raise GvstoreError(f"{url} answered more than {cap} bytes, the limit "
                               "(max_response_bytes); stopped reading there")
        return bytes(buf[:cap])

    async def _try(self, session: Any, method: str, url: str, body: dict[str, Any] | None,
                   connect_timeout: float) -> tuple[dict[str, Any] | None, str, str | None]:
        """One try (its time bound is the caller's): (the answer, "", None), or (None, what
        went wrong, Retry-After) for a failure worth retrying. Other failures raise."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        async with session.request(method, url, json=body, allow_redirects=False,
                                   timeout=timeout) as resp:
            if resp.status == 200:
                cap = self.limits.max_response_bytes
                raw = await self._read_capped(resp, url, cap, strict=True)
                try:
                    data = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise GvstoreError(f"{url} answered with invalid JSON: "
                                       f"{_one_line(raw.decode('utf-8', 'replace'))}") from exc
                if not isinstance(data, dict):
                    raise GvstoreError(f"{url} answered {_one_line(str(data))}, not a JSON "
                                       "object")
                return data, "", None
            cap = min(ERROR_BODY_BYTES, self.limits.max_response_bytes)
            text = (await self._read_capped(resp, url, cap, strict=False)).decode(
                "utf-8", "replace")
            if resp.status not in RETRY_STATUS and resp.status < 500:
                where = resp.headers.get("Location")
                moved = f" (redirect to {_one_line(where)} not followed)" if where else ""
                raise GvstoreError(f"{url} refused the request: HTTP {resp.status}{moved}: "
                                   f"{_one_line(text, 500)}")
            return None, f"HTTP {resp.status} from {url}: {_one_line(text)}", \
                resp.headers.get("Retry-After")

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None
                      ) -> dict[str, Any]:
        """One request with retries, each try to the next server, each within ``timeout``
        seconds and all within ``deadline`` seconds of the first (time spent waiting for a
        free slot of ``concurrency`` is this client's queue, and does not count)."""
        import aiohttp

        session = await self._open()
        lim = self.limits
        assert self._sem is not None
        loop = asyncio.get_running_loop()
        last = ""
        end: float | None = None
        tries = 0
        out_of_time = False
        for attempt in range(lim.max_retries + 1):
            url = self.urls[self._next % len(self.urls)] + path
            self._next += 1
            retry_after: str | None = None
            queued = loop.time()
            async with self._sem:
                now = loop.time()
                end = now + lim.deadline if end is None else end + (now - queued)
                budget = min(lim.timeout, end - now)
                if budget <= 0:
                    out_of_time = True
                    break
                self.attempts += 1
                tries += 1
                started = now
                try:
                    async with asyncio.timeout(budget):
                        data, last, retry_after = await self._try(
                            session, method, url, body, min(budget, lim.connect_timeout))
                    if data is not None:
                        return data
                except TimeoutError:
                    took = loop.time() - started
                    last = f"no answer from {url} within {took:.3g} s"
                except aiohttp.ClientError as exc:
                    last = f"{type(exc).__name__} from {url}: {_one_line(str(exc))}"
            if attempt < lim.max_retries:
                delay = self._delay(attempt, retry_after)
                if loop.time() + delay >= end:
                    out_of_time = True
                    break
                await asyncio.sleep(delay)
        if out_of_time or (end is not None and loop.time() >= end):
            raise GvstoreError(f"{method} {path} got no answer within the deadline of "
                               f"{lim.deadline:g} s ({tries} tries of at most "
                               f"{lim.timeout:g} s; last: {last}); are the servers up "
                               f"({', '.join(self.urls)})?")
        raise GvstoreError(f"{method} {path} failed {tries} times (last: {last});"
                           f" are the servers up ({', '.join(self.urls)})?")

    @staticmethod
    async def gather(coros: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
        """Run all; on the first failure cancel the rest and raise that failure."""
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(c) for c in coros]
        except BaseExceptionGroup as eg:
            raise eg.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def close(self) -> None:
        """Close the connections and stop the loop thread (a second call does nothing)."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_session(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=10)
            loop.close()
