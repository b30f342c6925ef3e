"""`avisa staff add|list|disable`: the console's staff accounts, in the console's own tables."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.orm import Session

from common.db import make_engine, make_sessions
from services.console import repository, staff
from services.console.config import Settings
from services.console.main import migrate
from services.console.web import utcnow


def _password() -> str:
    """The password from standard input: one line, typed (no echo) or piped."""
    if sys.stdin.isatty():
        import getpass  # noqa: PLC0415 - only at a terminal

        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Carry out one staff command; exit status 0 on success, 2 on a refused one."""
    settings = settings or Settings()
    migrate(settings)
    engine = make_engine(settings.database_url)
    try:
        with make_sessions(engine).begin() as db:
            return _command(args, db)
    except staff.StaffError as error:
        print(f"avisa: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()


def _command(args: argparse.Namespace, db: Session) -> int:
    if args.staff_command == "add":
        member, secret = staff.add(
            session=db,
            email=args.email,
            password=_password(),
            role=args.role,
            agency_id=args.agency,
            now=utcnow(),
        )
        assert secret is not None
        print(staff.provisioning_uri(secret, member.email))
        print("Add this to the person's authenticator app (it is shown once).", file=sys.stderr)
    elif args.staff_command == "list":
        for member in repository.list_staff(session=db):
            state = "disabled" if member.disabled else "active"
            print(f"{member.email}\t{member.role}\t{member.agency_id or '-'}\t{state}")
    else:
        staff.disable(session=db, email=args.email, now=utcnow())
        print(f"{staff.normalise_email(args.email)} disabled; its sessions ended.")
    return 0
