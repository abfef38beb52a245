"""The metrics server over HTTPS with client certificates (prometheus-client's own TLS), certificates from
a throwaway CA (trustme): a scraper with a certificate from the CA reads the metrics; one without, or
over plain HTTP, does not."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
import trustme

from lptem.service.daemon import Daemon, DaemonConfig, InsecureBindError, MetricsTls, check_exposure
from tests.conftest import ANY_PORT, free_port


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("prometheus@lab")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "client")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return paths


def scrape(url: str, context: ssl.SSLContext | None = None) -> str:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return str(response.read().decode())


def test_metrics_over_https_need_a_client_certificate(make_daemon, pki):
    port = free_port()
    tls = MetricsTls(pki["cert"], pki["key"], pki["ca"])
    make_daemon(metrics_port=port, metrics_tls=tls)
    url = f"https://127.0.0.1:{port}/metrics"
    trusted = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        scrape(url, trusted)  # no client certificate
    trusted.load_cert_chain(str(pki["client"]))
    assert "lptem_frames_received_total" in scrape(url, trusted)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        scrape(f"http://127.0.0.1:{port}/metrics")  # plain HTTP gets nothing


def test_remote_metrics_are_allowed_only_with_client_certificates(pki):
    remote = DaemonConfig(metrics_port=9105, metrics_addr="0.0.0.0")
    check_exposure(replace(remote, metrics_tls=MetricsTls(pki["cert"], pki["key"], pki["ca"])))
    for unauthenticated in (remote, replace(remote, metrics_tls=MetricsTls(pki["cert"], pki["key"]))):
        with pytest.raises(InsecureBindError, match="metrics"):
            check_exposure(unauthenticated)


def test_a_silent_client_does_not_stop_the_scrapes_or_the_shutdown(make_daemon, pki):
    port = free_port()
    daemon = make_daemon(metrics_port=port, metrics_tls=MetricsTls(pki["cert"], pki["key"], pki["ca"]))
    trusted = ssl.create_default_context(cafile=str(pki["ca"]))
    trusted.load_cert_chain(str(pki["client"]))
    with socket.create_connection(("127.0.0.1", port)):  # connects, never starts the handshake
        assert "lptem_frames_received_total" in scrape(f"https://127.0.0.1:{port}/metrics", trusted)
        daemon.stop()  # returns: the silent connection holds only its own thread


def test_a_taken_metrics_port_fails_the_start_and_leaves_no_record(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = DaemonConfig(
            ingest=ANY_PORT, publish=ANY_PORT, preview=ANY_PORT, control=ANY_PORT, metrics_port=port,
            record=tmp_path / "rec",
        )  # fmt: skip
        with pytest.raises(OSError, match="in use"):
            Daemon(config)
    assert not (tmp_path / "rec").exists()
