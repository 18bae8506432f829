"""--include soft404: one canary per host tells catch-all 200s and parked pages from real ones."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from afetch._include import Verdict
from afetch.attempt.include import BodyKeeper
from afetch.attempt.soft404 import NOT_SOFT, page_sign, verdict, visible_words
from tests.cli_run import afetch_cli, jsonl
from tests.helpers import by_url, collect, serving

_NOT_FOUND = (
    "<html><head><title>Oops</title></head><body><h1>Sorry</h1><p>We looked everywhere for"
    " {path} but this page has gone missing. Try the search box or go back to the home page"
    " of our little shop.</p><script>var t = {n};</script></body></html>"
)
_PARKED = (
    "<html><head><title>example-parked.test</title>"
    '<script src="https://www.sedoparking.com/frmpark/x.js"></script></head><body>'
    "<p>This domain may be for sale. Buy this domain today. Related searches: cheap flights,"
    " insurance quotes, hotels.</p></body></html>"
)
_HOME = (
    "<html><head><title>Home</title></head><body><h1>Welcome</h1><p>Fresh bread every morning,"
    " cakes on Sundays, and coffee all day long at the corner of the market square.</p></body>"
    "</html>"
)
_ARTICLE = (
    "<html><head><title>Rye bread</title></head><body><h1>Rye bread</h1><p>Our rye is baked"
    " slowly from a sourdough starter kept alive for twenty years, dark and dense.</p></body>"
    "</html>"
)


class _Handler(BaseHTTPRequestHandler):
    #: Port → "catchall" (every path 200, the page echoes the path), "parked" (every path the
    #: same parking page), "normal" (two pages, else a real 404), "redirect" (two pages, else a
    #: redirect to the home page).
    modes: ClassVar[dict[int, str]] = {}
    #: Paths asked for, per port.
    seen: ClassVar[dict[int, list[str]]] = {}
    #: When each request arrived, per port.
    times: ClassVar[dict[int, list[float]]] = {}
    count = 0
    #: Port (as text) → seconds the canary's answer waits.
    delay: ClassVar[dict[str, float]] = {}

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        self.seen.setdefault(port, []).append(self.path)
        self.times.setdefault(port, []).append(time.monotonic())
        mode = self.modes[port]
        if len(self.path) == 17:
            time.sleep(self.delay.get(str(port), 0))
        _Handler.count += 1
        status, body = 200, ""
        if mode == "catchall":
            if self.path == "/":
                body = _HOME
            else:  # varies per request: the path echoed, a counter in a script
                body = _NOT_FOUND.format(path=self.path, n=_Handler.count)
        elif mode == "parked":
            body = _PARKED
        elif mode == "redirect" and self.path not in ("/", "/rye"):
            self.send_response(302)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        elif self.path == "/":
            body = _HOME
        elif self.path == "/rye":
            body = _ARTICLE
        else:
            status, body = 404, "<html><title>404</title>Not found</html>"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sites() -> Iterator[dict[str, str]]:
    """Three hosts on 127.0.0.1: mode → base URL."""
    bases = {}
    with contextlib.ExitStack() as stack:
        for mode in ("catchall", "parked", "normal", "redirect"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            port = server.server_address[1]
            _Handler.modes[port] = mode
            _Handler.seen[port] = []
            stack.enter_context(serving(server))
            bases[mode] = f"http://127.0.0.1:{port}"
        yield bases


def _seen(base: str) -> list[str]:
    return _Handler.seen[int(base.rsplit(":", 1)[1])]


def test_catch_all_parked_and_real_pages(sites: dict[str, str]) -> None:
    catchall, parked, normal = sites["catchall"], sites["parked"], sites["normal"]
    urls = [
        f"{catchall}/",
        f"{catchall}/old/article-1",
        f"{catchall}/gone?id=7",
        f"{parked}/",
        f"{parked}/blog/post",
        f"{normal}/",
        f"{normal}/rye",
        f"{normal}/missing",
    ]
    records = by_url(collect(urls, include=("soft404",), concurrency=8))
    flags = {
        url: (r.status, r.extra and (r.extra["soft_404"], r.extra["parked"]))
        for url, r in records.items()
    }
    assert flags == {
        f"{catchall}/": (200, (False, False)),  # the real home page
        f"{catchall}/old/article-1": (200, (True, False)),
        f"{catchall}/gone?id=7": (200, (True, False)),
        f"{parked}/": (200, (True, True)),
        f"{parked}/blog/post": (200, (True, True)),
        f"{normal}/": (200, (False, False)),  # no false positive on a normal site
        f"{normal}/rye": (200, (False, False)),
        f"{normal}/missing": (404, (False, False)),  # a real 404
    }
    # One canary per host, whatever the number of its records: /<16 hex>.
    for base in (catchall, parked, normal):
        canaries = [p for p in _seen(base) if len(p) == 17 and p[1:].isalnum()]
        assert len(canaries) == 1, _seen(base)
        assert len(_seen(base)) == 1 + sum(u.startswith(base) for u in urls)


def test_a_catch_all_redirect_home(sites: dict[str, str]) -> None:
    base = sites["redirect"]
    urls = [f"{base}/", f"{base}/rye", f"{base}/old/page"]
    records = by_url(collect(urls, include=("soft404",), concurrency=1))
    flags = [(r.final_url, r.extra and r.extra["soft_404"]) for r in map(records.get, urls)]
    # The home page asked for itself is the real page; a path that lands on it is not.
    assert flags == [(f"{base}/", False), (f"{base}/rye", False), (f"{base}/", True)]


def test_from_the_command_line_the_keys_follow_the_others(sites: dict[str, str]) -> None:
    base = sites["catchall"]
    result = afetch_cli("-", "-q", "--include", "soft404,title", stdin=f"{base}/nope\n")
    (record,) = jsonl(result.stdout)
    assert list(record)[-3:] == ["title", "soft_404", "parked"]
    assert (record["soft_404"], record["parked"]) == (True, False)


def test_a_slow_canary_is_not_in_elapsed_ms(sites: dict[str, str]) -> None:
    base = sites["normal"]
    _Handler.delay[base.rsplit(":", 1)[1]] = 3.0  # the canary's answer only
    (record,) = collect([f"{base}/"], include=("soft404",))
    assert record.extra == {"soft_404": False, "parked": False}
    assert record.elapsed_ms < 1500  # the page on loopback: milliseconds


def test_the_canary_is_counted_by_the_host_rate(sites: dict[str, str]) -> None:
    base = sites["catchall"]
    port = int(base.rsplit(":", 1)[1])
    (a, b) = collect([f"{base}/a", f"{base}/b"], include=("soft404",), host_rate=2.0)
    assert (a.extra, b.extra) == ({"soft_404": True, "parked": False},) * 2
    # Three requests (the canary among them) started 0.5 s apart: the third at least 1 s after
    # the first. Measured where the server hears them, so a loaded machine may move one of them
    # a little either way: the span, not each gap, has the margin.
    times = _Handler.times[port]
    assert len(times) == 3
    assert times[-1] - times[0] > 0.75, times


def test_without_soft404_no_canary_is_sent(sites: dict[str, str]) -> None:
    base = sites["catchall"]
    (record,) = collect([f"{base}/nope"], include=("title",))
    assert "soft_404" not in record.extra
    assert _seen(base) == ["/nope"]


def test_a_run_without_soft404_never_loads_it(sites: dict[str, str]) -> None:
    probe = (
        "import sys; from tests.helpers import collect;"
        f" collect([{sites['normal'] + '/'!r}], include=('title', 'body'));"
        " print('afetch.attempt.soft404' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "False", done.stderr


def test_a_record_without_a_response_has_null_flags() -> None:
    (record,) = collect(["http://127.0.0.1:9/"], include=("soft404",), retries=0, timeout=5)
    assert record.extra == {"soft_404": None, "parked": None}


def _sign(status: int, body: str, url: str) -> object:
    keeper = BodyKeeper(1 << 20)
    keeper.add(body.encode())
    return page_sign(status, keeper, "text/html", url)


def test_a_page_unlike_the_canary_or_not_200_is_no_soft_404() -> None:
    canary = _sign(
        200, _NOT_FOUND.format(path="/0123456789abcdef", n=1), "http://h/0123456789abcdef"
    )
    like = _sign(200, _NOT_FOUND.format(path="/a/b", n=2), "http://h/a/b")
    assert verdict(like, canary, "http://h/a/b") == Verdict(True, False)  # type: ignore[arg-type]
    unlike = _sign(200, _ARTICLE, "http://h/rye")
    assert verdict(unlike, canary, "http://h/rye") == NOT_SOFT  # type: ignore[arg-type]
    assert verdict(like, None, "http://h/a/b") == NOT_SOFT  # type: ignore[arg-type]
    not_found = _sign(404, _NOT_FOUND.format(path="/0123456789abcdef", n=1), "http://h/x")
    assert verdict(like, not_found, "http://h/a/b") == NOT_SOFT  # type: ignore[arg-type]


def test_visible_text_is_linear_on_hostile_markup() -> None:
    # Unclosed tags and an unclosed script: each piece is looked at once.
    body = b"<" * 200_000 + b"<script>" + b"x " * 100_000
    assert visible_words(body, None, frozenset()) == []


def test_on_the_httpx_adapter_too() -> None:
    import httpx

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/":
            return httpx.Response(200, text=_HOME, headers={"content-type": "text/html"})
        page = _NOT_FOUND.format(path=request.url.path, n=len(asked))
        return httpx.Response(200, text=page, headers={"content-type": "text/html"})

    urls = ["http://site.test/", "http://site.test/a", "http://site.test/b/c"]
    records = by_url(collect(urls, transport=httpx.MockTransport(handler), include=("soft404",)))
    assert [records[u].extra["soft_404"] for u in urls] == [False, True, True]  # type: ignore[index]
    assert sum(len(path) == 17 for path in asked) == 1
