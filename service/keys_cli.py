"""``lptem keys``: make and manage the CURVE keys of a daemon (lptem.service.keys; docs/security.md)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lptem.service.keys import KeyFolder
from lptem.service.protocol.curve import KEY_ENV, ROLE_RIGHTS, ROLES, SERVER_KEY_ENV, KeyFileError

log = logging.getLogger("lptem.keys")


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create a key folder with the daemon's key pair")
    init.add_argument("folder", type=Path, metavar="DIR", help="the key folder (created, owner-only)")
    add = sub.add_parser(
        "add",
        help="authorise a client: a new key pair in DIR/clients/ to hand to it, or its own public key",
        description="Roles: " + "; ".join(f"{role}: {rights}" for role, rights in ROLE_RIGHTS.items()) + ".",
    )
    add.add_argument("folder", type=Path, metavar="DIR")
    add.add_argument("name", help="the client's name, e.g. camera-pc or alice (letters, digits, _ . -)")
    add.add_argument("--role", required=True, choices=ROLES, help="what the client may do (see above)")
    add.add_argument(
        "--public",
        type=Path,
        metavar="FILE",
        help="authorise this public key (NAME.key, made on the client's machine) instead of making a pair",
    )
    listing = sub.add_parser("list", help="the daemon's public key and every authorised client, by role")
    listing.add_argument("folder", type=Path, metavar="DIR")
    revoke = sub.add_parser("revoke", help="take a client's key back (a running daemon notices in ~1 s)")
    revoke.add_argument("folder", type=Path, metavar="DIR")
    revoke.add_argument("name")


def run_keys(args: argparse.Namespace) -> int:
    folder = KeyFolder(args.folder)
    try:
        if args.action == "init":
            public = folder.init()
            print(f"daemon key pair in {args.folder}; give clients its public key: {public}")
            print(
                f"then: lptem serve --keys {args.folder} ...; lptem keys add {args.folder} NAME --role ROLE"
            )
        elif args.action == "add":
            key = folder.add(args.name, args.role, public_key_file=args.public)
            print(f"authorised {key.name} as {key.role} (public key {key.public.decode()})")
            if args.public is None:
                secret, server = (
                    args.folder / "clients" / f"{key.name}.key_secret",
                    args.folder / "server.key",
                )
                print(f"hand {secret} (privately: the client's secret) and {server} to the client; it uses")
                print(f"  --key {secret.name} --server-key server.key  (or {KEY_ENV}, {SERVER_KEY_ENV})")
        elif args.action == "list":
            _print_listing(folder)
        else:
            key = folder.revoke(args.name)
            print(f"revoked {key.name} ({key.role}); a running daemon refuses it within about a second")
    except KeyFileError as exc:
        log.error("%s", exc)
        return 2
    return 0


def _print_listing(folder: KeyFolder) -> None:
    public, _ = folder.server_keys()
    print(f"daemon public key: {public.decode()}  ({folder.path / 'server.key'})")
    keys = folder.authorised()
    for role in ROLES:
        names = [k for k in keys if k.role == role]
        print(f"{role} ({len(names)}):")
        for k in names:
            print(f"  {k.name:<24} {k.public.decode()}")
    for problem in folder.problems():
        print(f"not used: {problem}")
