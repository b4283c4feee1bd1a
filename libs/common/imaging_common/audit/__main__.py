"""`python -m imaging_common.audit verify|purge`: check the audit chain; apply the retention.

    verify   walk the hash chain; exit 1 and name the first altered or missing row
    purge    delete rows older than IMAGING_AUDIT_RETENTION_DAYS (>= 180), keeping the chain anchored
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from imaging_common import audit
from imaging_common.config import CommonSettings


async def _run(args: argparse.Namespace) -> int:
    settings = CommonSettings()
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        if await conn.fetchval("SELECT to_regclass('audit.audit_chain')") is None:
            print("no audit schema in this database; run `make migrate` first", file=sys.stderr)
            return 2
        if args.command == "verify":
            report = await audit.verify(conn)
            print(report, file=sys.stdout if report.ok else sys.stderr)
            return 0 if report.ok else 1
        days = args.retention_days or settings.audit_retention_days
        try:
            count = await audit.purge_older_than_days(conn, days, actor="cli:purge")
        except (ValueError, RuntimeError) as exc:
            print(f"purge refused: {exc}", file=sys.stderr)
            return 1
        print(f"purged {count} audit row(s) older than {days} days; chain re-anchored")
        return 0
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imaging_common.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="verify the hash chain")
    purge = sub.add_parser("purge", help="delete rows older than the retention")
    purge.add_argument("--retention-days", type=int, default=None,
                       help="override IMAGING_AUDIT_RETENTION_DAYS (at least 180)")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
