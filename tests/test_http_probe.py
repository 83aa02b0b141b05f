"""The http probe's engine against real local servers: uvicorn over plain HTTP and TLS
(certificates from a throw-away CA), a closed port, and a listener that never answers."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from pydantic import ValidationError

from probes.http import (
    MAX_BODY,
    MAX_REDIRECTS,
    HttpEngine,
    HttpFindings,
    HttpSettings,
    _connect_failure,
    parse_certificate,
)
from tests.http_servers import (
    Authority,
    Server,
    closed_port,
    issue,
    make_ca,
    serve,
    silent_listener,
)

DAY = 86400.0


def settings(url: str, **values: Any) -> HttpSettings:
    """Settings as the inventory file writes them (durations as strings)."""
    return HttpSettings.model_validate({"url": url, **values})


async def check(url: str, **values: Any) -> HttpFindings:
    return await HttpEngine().check(settings(url, **values))


@pytest.fixture(scope="module")
def plain() -> Iterator[Server]:
    with serve() as server:
        yield server


@dataclass
class Tls:
    ca: Authority
    good: Server
    good_cert: x509.Certificate
    soon: Server  # expires in 3 days
    expired: Server
    expired_cert: x509.Certificate


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    d = tmp_path_factory.mktemp("tls")
    ca = make_ca(d)
    now = dt.datetime.now(dt.UTC)
    good = issue(ca, d, "good", not_after=now + dt.timedelta(days=90))
    soon = issue(ca, d, "soon", not_after=now + dt.timedelta(days=3))
    expired = issue(ca, d, "expired", not_after=now - dt.timedelta(days=2))
    with serve(*good[:2]) as g, serve(*soon[:2]) as s, serve(*expired[:2]) as e:
        yield Tls(ca, g, good[2], s, e, expired[2])


# --- plain HTTP ------------------------------------------------------------------------------


async def test_ok(plain: Server) -> None:
    found = await check(plain.url("/ok"), expect_body="controller UI")
    assert found.ok and found.error is None and found.reason == ""
    assert found.status == 200
    assert found.url == plain.url("/ok")
    assert found.tls is None
    assert found.body_bytes == len(b"netmon ok: controller UI")
    assert found.headers_latency is not None and found.total_latency is not None
    assert found.total_latency >= found.headers_latency > 0


async def test_wrong_status_is_data(plain: Server) -> None:
    found = await check(plain.url("/fail"))
    assert not found.ok
    assert found.status == 500
    assert found.error == "http_status"
    assert found.reason == "HTTP status 500, expected 200"


@pytest.mark.parametrize(
    ("expect", "ok"),
    [("5xx", True), ([200, 500], True), (["2xx", "3xx"], False), (503, False)],
)
async def test_expect_status(plain: Server, expect: object, ok: bool) -> None:
    found = await check(plain.url("/fail"), expect_status=expect)
    assert found.ok is ok
    assert found.status == 500


async def test_body_mismatch(plain: Server) -> None:
    found = await check(plain.url("/ok"), expect_body="Login")
    assert not found.ok and found.status == 200
    assert found.error == "body_mismatch"
    assert found.reason == "body does not contain 'Login' (first 24 bytes read)"


async def test_chunked_body_is_decoded(plain: Server) -> None:
    # The marker straddles two chunks: a search over the raw stream would miss it.
    found = await check(plain.url("/chunked"), expect_body="MARKER at the end")
    assert found.ok, found.reason


async def test_body_read_is_bounded(plain: Server) -> None:
    found = await check(plain.url("/big"), expect_body="TAIL-MARKER")
    assert found.error == "body_mismatch"
    assert found.body_bytes == MAX_BODY
    assert (await check(plain.url("/big"), expect_body="xxxx")).ok


async def test_slow_route_latency_is_at_least_the_delay(plain: Server) -> None:
    found = await check(plain.url("/slow") + "?delay=0.3")
    assert found.ok, found.reason
    assert found.headers_latency is not None and found.headers_latency >= 0.3
    assert found.url == plain.url("/slow")  # the query string is never shown


async def test_slow_route_past_the_deadline_times_out(plain: Server) -> None:
    found = await check(plain.url("/slow") + "?delay=5", timeout="300ms")
    assert not found.ok and found.error == "timeout"
    assert found.reason == "no answer within 0.3s (waiting for response headers)"
    assert found.status is None


async def test_redirect_not_followed_by_default(plain: Server) -> None:
    found = await check(plain.url("/redirect"))
    assert found.status == 302 and found.error == "http_status" and found.redirects == 0
    assert (await check(plain.url("/redirect"), expect_status="3xx")).ok


async def test_redirect_followed_when_asked(plain: Server) -> None:
    found = await check(plain.url("/redirect"), follow_redirects=True)
    assert found.ok and found.status == 200 and found.redirects == 1
    assert found.url == plain.url("/ok")
    assert "secret" not in repr(found)


async def test_redirects_are_bounded(plain: Server) -> None:
    before = plain.app.requests
    found = await check(plain.url("/loop"), follow_redirects=True)
    assert found.error == "redirect"
    assert found.reason == f"more than {MAX_REDIRECTS} redirects"
    assert plain.app.requests - before == MAX_REDIRECTS + 1


async def test_redirect_to_another_scheme_is_refused(plain: Server) -> None:
    found = await check(plain.url("/away"), follow_redirects=True)
    assert found.error == "redirect"
    assert found.reason == "redirect to an unusable location: URL scheme must be http or https"


# --- endpoints that are down -----------------------------------------------------------------


async def test_connection_refused() -> None:
    port = closed_port()
    found = await check(f"http://127.0.0.1:{port}/")
    assert not found.ok and found.error == "connect"
    assert found.reason == f"connection refused by 127.0.0.1:{port}"
    assert found.status is None and found.headers_latency is None


async def test_listener_that_never_answers_times_out() -> None:
    with silent_listener() as port:
        found = await check(f"http://127.0.0.1:{port}/", timeout="300ms")
    assert found.error == "timeout"
    assert found.reason == "no answer within 0.3s (waiting for response headers)"


async def test_tls_handshake_that_never_answers_times_out() -> None:
    with silent_listener() as port:
        found = await check(f"https://127.0.0.1:{port}/", timeout="300ms")
    assert found.error == "timeout"
    assert found.reason == "no answer within 0.3s (TLS handshake)"


def test_dns_failure_maps_to_dns() -> None:
    # No real lookup: resolving a made-up name could send a query off this host.
    failure = _connect_failure(socket.gaierror(-2, "Name or service not known"), "his.example", 443)
    assert (failure.error, failure.reason) == (
        "dns",
        "cannot resolve his.example: Name or service not known",
    )


async def test_plain_http_to_a_tls_port_is_a_protocol_error(tls: Tls) -> None:
    found = await check(tls.good.url("/ok"))
    assert not found.ok and found.error == "protocol"
    assert found.reason == "connection closed while waiting for response headers"


# --- TLS -------------------------------------------------------------------------------------


async def test_tls_verified_with_ca_file(tls: Tls) -> None:
    found = await check(tls.good.url("/ok", "https"), ca_file=str(tls.ca.pem))
    assert found.ok, found.reason
    assert found.tls is not None and found.tls.verified
    assert found.tls.not_after == tls.good_cert.not_valid_after_utc.timestamp()
    assert found.tls.days_left is not None and 89 < found.tls.days_left <= 90
    assert (found.tls.subject_cn, found.tls.issuer_cn) == ("127.0.0.1", "netmon test CA")
    assert found.tls.verify_error == ""


async def test_tls_without_ca_file_fails_verification(tls: Tls) -> None:
    found = await check(tls.good.url("/ok", "https"))
    assert not found.ok and found.error == "tls"
    assert found.reason.startswith("TLS certificate verify failed: ")
    assert "unable to get local issuer certificate" in found.reason
    assert found.tls is not None and not found.tls.verified
    assert found.tls.verify_error == found.reason
    assert found.status is None


async def test_tls_unverified_still_reads_the_certificate(tls: Tls) -> None:
    found = await check(tls.good.url("/ok", "https"), verify_tls=False)
    assert found.ok, found.reason
    assert found.tls is not None and not found.tls.verified
    assert found.tls.not_after == tls.good_cert.not_valid_after_utc.timestamp()


async def test_near_expiry_is_reported_not_failed(tls: Tls) -> None:
    # The check passes; cert_min_days is judged by the verdict rule on days_left.
    found = await check(tls.soon.url("/ok", "https"), ca_file=str(tls.ca.pem))
    assert found.ok, found.reason
    assert found.tls is not None and found.tls.days_left is not None
    assert 2 < found.tls.days_left <= 3


async def test_expired_certificate(tls: Tls) -> None:
    found = await check(tls.expired.url("/ok", "https"), ca_file=str(tls.ca.pem))
    assert found.error == "tls"
    assert found.reason == "TLS certificate verify failed: certificate has expired"
    # Unverified, the check passes and days_left goes negative.
    not_after = tls.expired_cert.not_valid_after_utc.timestamp()
    engine = HttpEngine(clock=lambda: not_after + 2 * DAY)
    unverified = await engine.check(settings(tls.expired.url("/ok", "https"), verify_tls=False))
    assert unverified.ok
    assert unverified.tls is not None and unverified.tls.days_left == -2.0


async def test_days_left_follow_the_engine_clock(tls: Tls) -> None:
    not_after = tls.good_cert.not_valid_after_utc.timestamp()
    engine = HttpEngine(clock=lambda: not_after - 10 * DAY)
    found = await engine.check(settings(tls.good.url("/ok", "https"), ca_file=str(tls.ca.pem)))
    assert found.tls is not None and found.tls.days_left == 10.0


async def test_findings_round_trip_json(tls: Tls, plain: Server) -> None:
    for found in (
        await check(tls.good.url("/ok", "https"), ca_file=str(tls.ca.pem)),
        await check(tls.good.url("/ok", "https")),
        await check(plain.url("/fail")),
    ):
        data = json.loads(json.dumps(found.to_json()))
        assert HttpFindings.from_json(data) == found
    assert HttpFindings.from_json({"ok": True, "url": "http://x/", "added_later": 1}).ok


# --- the DER reader, cross-checked with cryptography -----------------------------------------


@pytest.mark.parametrize(
    ("years", "cn"), [(1, "his.hospital.example"), (40, "127.0.0.1"), (1, None)]
)
def test_parse_certificate(tmp_path: Path, years: int, cn: str | None) -> None:
    # 40 years lands past 2049: notAfter is then a GeneralizedTime, before that a UTCTime.
    ca = make_ca(tmp_path)
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=365 * years)
    cert = issue(ca, tmp_path, "c", not_after=not_after, cn=cn)[2]
    der = cert.public_bytes(serialization_der())
    info = parse_certificate(der)
    assert info.not_after == cert.not_valid_after_utc.timestamp() == not_after.timestamp()
    assert info.subject_cn == (cn or "")
    assert info.issuer_cn == "netmon test CA"


def test_parse_certificate_rejects_garbage(tmp_path: Path) -> None:
    der = make_ca(tmp_path).cert.public_bytes(serialization_der())
    for broken in (der[:40], b"\x30\x03\x02\x01", b""):
        with pytest.raises(ValueError, match="malformed DER certificate"):
            parse_certificate(broken)


def serialization_der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


# --- settings --------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = settings("https://10.20.0.2/")
    assert s.expect_status == ("200",)
    assert (s.timeout, s.max_latency, s.cert_min_days) == (5.0, 2.0, 14)
    assert s.verify_tls and s.ca_file is None and not s.follow_redirects
    assert s.status_ok(200) and not s.status_ok(204)


def errors(**values: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        HttpSettings.model_validate(values)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "ftp://x/"}, "URL scheme must be http or https"),
        ({"url": "http:///path"}, "URL has no host"),
        ({"url": "http://x:99999/"}, "not a valid URL: Port out of range 0-65535"),
        ({"url": "https://admin:pw@10.0.0.1/"}, "credentials in the URL are not supported"),
    ],
)
def test_settings_reject_bad_urls(values: dict[str, Any], message: str) -> None:
    [(loc, msg)] = errors(**values)
    assert loc == "url" and message in msg
    assert "pw" not in msg


def test_settings_reject_unknown_keys_and_methods() -> None:
    assert errors(url="http://x/", methd="GET") == [("methd", "Extra inputs are not permitted")]
    [(loc, _msg)] = errors(url="http://x/", method="POST")
    assert loc == "method"


@pytest.mark.parametrize("bad", [True, 600, "2x", "20", [], ["2xx", 99]])
def test_settings_reject_bad_status(bad: object) -> None:
    assert {loc.split(".")[0] for loc, _ in errors(url="http://x/", expect_status=bad)} == {
        "expect_status"
    }


def test_settings_tls_options(tmp_path: Path) -> None:
    [(_, msg)] = errors(url="https://x/", verify_tls=False, ca_file=str(tmp_path))
    assert msg == "Value error, ca_file has no effect with verify_tls: false"
    [(_, msg)] = errors(url="https://x/", ca_file=str(tmp_path / "missing.pem"))
    assert msg == f"Value error, ca_file {tmp_path / 'missing.pem'}: no such file"


def test_settings_durations_need_a_unit() -> None:
    [(loc, _)] = errors(url="http://x/", timeout=5)
    assert loc == "timeout"
