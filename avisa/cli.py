"""The `avisa` command line: `dev`, `serve`, `keys`, `rules`, `staff`, `send-test-event`."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from avisa import admin
from common.auth import new_key

DEFAULT_PORTS = {"events": 8001, "rules": 8002, "notifier": 8003, "console": 8000}


def _client(url: str, key: str | None) -> httpx.Client:
    token = key or os.environ.get("AVISA_ADMIN_KEY") or "dev-admin-key"
    return httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def cmd_serve(args: argparse.Namespace) -> int:
    config = importlib.import_module(f"services.{args.service}.config")
    main = importlib.import_module(f"services.{args.service}.main")
    main.run(config.Settings(), host=args.host, port=args.port or DEFAULT_PORTS[args.service])
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from avisa.dev import run_dev  # noqa: PLC0415 - only `dev` needs the runner

    return run_dev(Path(args.root))


def cmd_keys_create(args: argparse.Namespace) -> int:
    if args.admin:
        print(new_key())
        print(
            "Set it as AVISA_ADMIN_KEY for every service; it is not stored anywhere.",
            file=sys.stderr,
        )
        return 0
    with _client(args.url, args.key) as client:
        result = admin.create_agency_key(client, args.agency, args.name)
    print(result["key"])
    print(f"Key for agency {args.agency}; it is shown only once.", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _client(args.url, args.key) as client:
        response = client.get(f"/v1/agencies/{args.agency}/keys")
    print(json.dumps(response.json(), indent=2))
    return 0 if response.is_success else 1


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _client(args.url, args.key) as client:
        response = client.delete(f"/v1/agencies/{args.agency}/keys/{args.prefix}")
    if not response.is_success:
        print(response.text, file=sys.stderr)
    return 0 if response.is_success else 1


PROGRESS_FROM = 20  # documents; smaller folders finish before a bar would help


class ApplyReport:
    """What `rules apply` shows: each created or updated document on stdout as it happens,
    and for large folders a progress bar on stderr, redrawn below the lines printed."""

    width = 30

    def __init__(self) -> None:
        self.bar_shown = False

    def __call__(self, done: int, total: int, document: admin.Document, outcome: str) -> None:
        if outcome != "unchanged":
            self._clear_bar()
            print(f"{outcome:<9} {document.kind}/{document.id}  ({document.path})", flush=True)
        if total >= PROGRESS_FROM:
            filled = self.width * done // total
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
            self.bar_shown = True
            if done == total:
                sys.stderr.write("\n")
                self.bar_shown = False
            sys.stderr.flush()

    def _clear_bar(self) -> None:
        if self.bar_shown:
            sys.stderr.write("\r" + " " * (self.width + 16) + "\r")
            sys.stderr.flush()


def cmd_rules_apply(args: argparse.Namespace) -> int:
    documents = admin.read_documents(Path(p) for p in args.file)
    with _client(args.url, args.key) as client:
        counts = admin.apply_documents(client, documents, ApplyReport())
    print(
        f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged"
    )
    return 0


def cmd_rules_export(args: argparse.Namespace) -> int:
    with _client(args.url, args.key) as client:
        documents = admin.export_documents(client)
    yaml.safe_dump_all(documents, sys.stdout, allow_unicode=True, sort_keys=False)
    return 0


def cmd_staff(args: argparse.Namespace) -> int:
    from avisa import staff  # noqa: PLC0415 - only `staff` needs the console's database

    return staff.run(args)


def cmd_send_test_event(args: argparse.Namespace) -> int:
    event = admin.example_event(source=args.source)
    with _client(args.url, args.key or "demo-agency-key") as client:
        result = admin.send_event(client, event)
    print(json.dumps(result))
    return 0


def _staff_parser(sub: Any) -> None:
    staff = sub.add_parser("staff", help="console staff accounts").add_subparsers(
        dest="staff_command", required=True
    )
    add = staff.add_parser("add", help="create an account; the password is read from stdin")
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=["admin", "editor", "viewer"])
    add.add_argument("--agency", default=None, help="the editor's agency id")
    add.set_defaults(func=cmd_staff)
    staff.add_parser("list", help="every account").set_defaults(func=cmd_staff)
    disable = staff.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("--email", required=True)
    disable.set_defaults(func=cmd_staff)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avisa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run broker, services and demo data locally")
    dev.add_argument("--root", default="var", help="folder for the database, outbox and logs")
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=sorted(DEFAULT_PORTS))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.set_defaults(func=cmd_serve)

    def remote(p: argparse.ArgumentParser, port: int) -> None:
        p.add_argument("--url", default=f"http://127.0.0.1:{port}")
        p.add_argument("--key", default=None, help="admin key (default: $AVISA_ADMIN_KEY)")

    keys = sub.add_parser("keys", help="agency and admin keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key (shown once)")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--agency")
    who.add_argument("--admin", action="store_true", help="print a fresh random admin key")
    create.add_argument("--name", default=None, help="agency name if it must be created")
    remote(create, 8001)
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="list an agency's key prefixes")
    listing.add_argument("--agency", required=True)
    remote(listing, 8001)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke an agency key by its prefix")
    revoke.add_argument("--agency", required=True)
    revoke.add_argument("prefix")
    remote(revoke, 8001)
    revoke.set_defaults(func=cmd_keys_revoke)

    rules = sub.add_parser("rules", help="rules and templates as code").add_subparsers(
        dest="rules_command", required=True
    )
    apply = rules.add_parser("apply", help="create or update from YAML files or folders")
    apply.add_argument("-f", "--file", action="append", required=True)
    remote(apply, 8002)
    apply.set_defaults(func=cmd_rules_apply)
    export = rules.add_parser("export", help="print every template and rule as YAML")
    remote(export, 8002)
    export.set_defaults(func=cmd_rules_export)

    _staff_parser(sub)

    test_event = sub.add_parser("send-test-event", help="publish the example event")
    test_event.add_argument("--source", default="demo")
    remote(test_event, 8001)
    test_event.set_defaults(func=cmd_send_test_event)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code: Any = args.func(args)
    except admin.AdminError as error:
        print(f"avisa: {error}", file=sys.stderr)
        code = 2
    except httpx.ConnectError as error:
        print(f"avisa: cannot reach the service: {error}", file=sys.stderr)
        code = 2
    sys.exit(code)
