"""``lptem health``: ask a daemon's ``/readyz`` (or ``/healthz``); exit 0 / 1 / 2, for exec probes."""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:9105"
EXIT_OK, EXIT_UNHEALTHY, EXIT_UNREACHABLE = 0, 1, 2


def add_health_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="the daemon's metrics server (lptem serve --metrics-port; default %(default)s)",
    )
    parser.add_argument(
        "--live", action="store_true", help="only liveness (/healthz): threads run, engine not stuck"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="seconds (default %(default)s)"
    )
    parser.add_argument("--cacert", type=Path, metavar="PEM", help="CA of an HTTPS metrics server")
    parser.add_argument("--cert", type=Path, metavar="PEM", help="client certificate (with --key)")
    parser.add_argument("--key", type=Path, metavar="PEM", help="the client certificate's private key")
    parser.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")


def run_health(args: argparse.Namespace) -> int:
    """0: healthy (ready); 1: the daemon answered that it is not; 2: no answer."""
    url = args.url.rstrip("/") + ("/healthz" if args.live else "/readyz")
    try:
        context = _tls(args) if url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as reply:
            status, body = reply.status, reply.read()
    except urllib.error.HTTPError as exc:  # 503: it answered, unhealthy
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"lptem health: {url}: no answer: {getattr(exc, 'reason', exc)}")
        return EXIT_UNREACHABLE
    try:
        report = json.loads(body)
    except ValueError:
        print(f"lptem health: {url} answered {status} without a health report (is it an lptem daemon?)")
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(report, indent=2))
    elif report.get("ok"):
        print(f"{'live' if args.live else 'ready'}: {url}")
    else:
        print(f"not {'live' if args.live else 'ready'}: {'; '.join(report.get('problems', []))}")
    return EXIT_OK if status == 200 and report.get("ok") else EXIT_UNHEALTHY


def _tls(args: argparse.Namespace) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(args.cacert) if args.cacert else None)
    if args.cert is not None:
        context.load_cert_chain(str(args.cert), str(args.key) if args.key else None)
    return context
