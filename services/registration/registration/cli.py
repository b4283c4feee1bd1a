"""`python -m registration.cli users add|list`: manage staff accounts from a shell.

    python -m registration.cli users add --username li.na --roles clerk,nurse --display-name "李娜"
    python -m registration.cli users list

`add` prints the TOTP secret and otpauth:// URI (and the password when it was generated) once.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

import asyncpg
from imaging_common import audit
from imaging_common.config import CommonSettings

from registration.app import SERVICE
from registration.domain import staff


async def _run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    await SERVICE.migrate(settings.database_url)
    conn = await asyncpg.connect(settings.database_url, timeout=5, server_settings={"application_name": "registration"})
    try:
        if args.action == "list":
            for user in await staff.list_users(conn):
                state = "active" if user.active else "disabled"
                if user.locked_until:
                    state += f", locked until {user.locked_until.isoformat()}"
                print(f"{user.id}  {user.username:<24} {','.join(user.roles):<32} {state}  {user.display_name}")
            return 0
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        async with conn.transaction():
            try:
                new = await staff.create_user(conn, username=args.username, roles=roles,
                                              display_name=args.display_name or "", password=args.password)
            except staff.StaffError as exc:
                print(f"cannot add user: {exc}", file=sys.stderr)
                return 1
            await audit.record(conn, actor=f"cli:{getpass.getuser()}", action="create", entity="staff_user",
                               entity_id=new.user.id, detail={"username": new.user.username, "roles": roles})
        print(f"created {new.user.username} ({', '.join(new.user.roles)}) id={new.user.id}")
        if new.password_generated:
            print(f"password:    {new.password}")
        print(f"TOTP secret: {new.totp_secret}")
        print(f"TOTP URI:    {new.totp_uri}")
        return 0
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m registration.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = parser.add_subparsers(dest="group", required=True)
    users = groups.add_parser("users", help="staff accounts").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="create a staff account")
    add.add_argument("--username", required=True)
    add.add_argument("--roles", required=True, help="comma separated, e.g. clerk,nurse")
    add.add_argument("--display-name", default="")
    add.add_argument("--password", default=None, help="omitted: one is generated and printed once")
    users.add_parser("list", help="list staff accounts")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
