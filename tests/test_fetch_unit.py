"""The core against respx mocks: injected transports, no network at all."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest
import respx

from tests.helpers import by_url, collect

BASE = "http://example.test"


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, base_url=BASE)


def transport_for(router: respx.MockRouter) -> httpx.MockTransport:
    return httpx.MockTransport(router.async_handler)


def test_statuses_bytes_and_content_type(router: respx.MockRouter) -> None:
    router.get("/ok").respond(200, content=b"hello", headers={"Content-Type": "text/plain"})
    router.get("/missing").respond(404)
    records = by_url(collect([f"{BASE}/ok", f"{BASE}/missing"], transport=transport_for(router)))
    ok = records[f"{BASE}/ok"]
    assert (ok.status, ok.ok, ok.bytes, ok.content_type) == (200, True, 5, "text/plain")
    assert ok.error is None
    assert ok.final_url == f"{BASE}/ok"
    missing = records[f"{BASE}/missing"]
    assert (missing.status, missing.ok, missing.error) == (404, False, None)


def test_redirects_are_followed_and_counted(router: respx.MockRouter) -> None:
    router.get("/a").respond(301, headers={"Location": "/b"})
    router.get("/b").respond(302, headers={"Location": f"{BASE}/c"})
    router.get("/c").respond(200, content=b"end")
    (record,) = collect([f"{BASE}/a"], transport=transport_for(router))
    assert (record.status, record.redirects, record.final_url) == (200, 2, f"{BASE}/c")


def test_no_follow_reports_the_redirect_itself(router: respx.MockRouter) -> None:
    router.get("/a").respond(302, headers={"Location": "/b"})
    (record,) = collect([f"{BASE}/a"], transport=transport_for(router), follow_redirects=False)
    assert (record.status, record.redirects, record.ok) == (302, 0, True)


def test_redirect_limit_gives_too_many_redirects(router: respx.MockRouter) -> None:
    router.get("/loop").respond(302, headers={"Location": "/loop"})
    (record,) = collect([f"{BASE}/loop"], transport=transport_for(router), max_redirects=3)
    assert record.error is not None
    assert record.error.type == "too_many_redirects"
    assert record.redirects == 3
    assert not record.ok


def test_credentials_do_not_follow_a_redirect_to_another_origin(router: respx.MockRouter) -> None:
    router.get("/start").respond(302, headers={"Location": "http://other.test/landing"})
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        if request.url.host == "other.test":
            return httpx.Response(200)
        return router.handler(request)

    collect(
        [f"{BASE}/start"],
        transport=httpx.MockTransport(handler),
        headers=(("Authorization", "Bearer s3cret"), ("Cookie", "a=b"), ("X-Keep", "1")),
    )
    assert seen[0]["authorization"] == "Bearer s3cret"
    assert "authorization" not in seen[1]
    assert "cookie" not in seen[1]
    assert seen[1]["x-keep"] == "1"


def test_headers_given_are_sent_but_never_recorded(router: respx.MockRouter) -> None:
    route = router.get("/h").respond(200)
    (record,) = collect(
        [f"{BASE}/h"],
        transport=transport_for(router),
        headers=(("Authorization", "Bearer s3cret"),),
        user_agent="probe/1",
    )
    sent = route.calls.last.request.headers
    assert sent["authorization"] == "Bearer s3cret"
    assert sent["user-agent"] == "probe/1"
    assert "s3cret" not in record.to_json()


def test_head_reads_no_body(router: respx.MockRouter) -> None:
    route = router.head("/h").respond(200, headers={"Content-Length": "10"})
    (record,) = collect([f"{BASE}/h"], transport=transport_for(router), method="HEAD")
    assert route.called
    assert (record.status, record.bytes) == (200, 0)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("not a url", "invalid_url"),
        ("ftp://example.test/file", "invalid_url"),
        ("http://", "invalid_url"),
        ("http://exa mple.test/", "invalid_url"),
        ("http://example.test:99999/", "invalid_url"),
    ],
)
def test_invalid_urls_become_records(router: respx.MockRouter, raw: str, kind: str) -> None:
    (record,) = collect([raw], transport=transport_for(router))
    assert record.url == raw
    assert record.error is not None
    assert record.error.type == kind
    assert record.status is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("boom", request=None), "connect"),  # type: ignore[arg-type]
        (httpx.ConnectError("[Errno -2] Name or service not known"), "dns"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("illegal status line"), "protocol"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "reset"),
    ],
)
def test_transport_errors_are_classified(exc: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    (record,) = collect([f"{BASE}/x"], transport=httpx.MockTransport(handler))
    assert record.error is not None
    assert record.error.type == kind


@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        (socket.gaierror(-2, "Name or service not known"), "dns"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
        (ConnectionRefusedError(111, "Connection refused"), "connect"),
    ],
)
def test_classification_follows_the_exception_chain(cause: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("failed") from cause

    (record,) = collect([f"{BASE}/x"], transport=httpx.MockTransport(handler))
    assert record.error is not None
    assert record.error.type == kind


def test_every_url_yields_exactly_one_record(router: respx.MockRouter) -> None:
    router.get(path__regex=r"/n/\d+").respond(200)
    urls = [f"{BASE}/n/{i}" for i in range(500)] + ["garbage"] * 3
    records = collect(urls, transport=transport_for(router), concurrency=7)
    assert sorted(r.url for r in records) == sorted(urls)


def test_settings_and_keywords_are_exclusive() -> None:
    import afetch

    with pytest.raises(TypeError):
        collect([], settings=afetch.Settings(), concurrency=3)


def test_urls_read_before_an_input_error_still_get_records() -> None:
    import asyncio

    import afetch

    mock = httpx.MockTransport(lambda request: httpx.Response(200))

    async def urls():  # type: ignore[no-untyped-def]
        for i in range(5):
            yield f"{BASE}/{i}"
        raise OSError(5, "Input/output error")

    got: list[str] = []

    async def run() -> None:
        async for record in afetch.fetch(urls(), transport=mock, concurrency=2):
            got.append(record.url)

    with pytest.raises(OSError, match="Input/output error"):
        asyncio.run(run())
    assert sorted(got) == [f"{BASE}/{i}" for i in range(5)]


@pytest.mark.parametrize("per_host", [None, 2])
def test_a_url_is_parsed_once_with_per_host_options(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, per_host: int | None
) -> None:
    # With per-host options the scheduler reads the usual URL for its host key, and its
    # attempt takes that reading (schedule.hosts.locate) instead of parsing the URL again.
    import afetch.attempt.machine

    parsed: list[str] = []

    def counting(raw: str) -> object:
        parsed.append(raw)
        return parse_url(raw)

    parse_url = afetch.attempt.machine.parse_url
    monkeypatch.setattr(afetch.attempt.machine, "parse_url", counting)
    router.get("/a").respond(200, content=b"a")
    router.get("/b").respond(404)
    urls = [f"{BASE}/a", f"{BASE}/b", "HTTP://Example.test/a"]
    records = collect(urls, transport=transport_for(router), per_host=per_host)
    statuses = sorted(zip(urls, (200, 404, 200), strict=True))
    assert sorted((r.url, r.status) for r in records) == statuses
    # The last is not the usual URL (an upper-case scheme): its attempt parses it.
    assert parsed == (urls if per_host is None else urls[2:])
