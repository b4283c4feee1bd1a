"""`python -m imaging_common.consistency`: every service's copy of orders and patients against registration's.

Prints each drift (service, subject, field, registration's value, the service's value) as a table, or as
JSON with --json. Exit code 0: no drift; 1: drifts; 2: the check failed (database unreachable, a
service's schema unreadable). The database is DATABASE_URL's (or --database-url); schemas are the
services' own names.

    python -m imaging_common.consistency --settle 10          # drifts that persist 10 s
    python -m imaging_common.consistency --json --service worklist --service queue_calling
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from imaging_common.config import CommonSettings
from imaging_common.consistency import COPIES, Report, check_settled, connector


async def _run(args: argparse.Namespace) -> Report:
    url = args.database_url or CommonSettings().database_url
    return await check_settled(connector(url), args.settle, services=args.service or None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imaging_common.consistency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                        help="look again after SECONDS and report only the drifts still there (events in flight)")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument("--database-url", default=None, help="instead of DATABASE_URL")
    parser.add_argument("--service", action="append", choices=COPIES,
                        help="compare only this service's copy (repeatable; default: all)")
    args = parser.parse_args(argv)
    if args.settle < 0:
        parser.error("--settle must be >= 0")
    try:
        report = asyncio.run(_run(args))
    except Exception as exc:  # unreachable database, registration unreadable: the check did not happen
        print(f"consistency check failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.table())
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
