"""`python -m imaging_common.audit verify|checkpoint|purge`: check the audit chain; apply the retention.

    verify       walk the HMAC chain and compare it with the last exported checkpoint; exit 1 and name
                 the first altered or missing row; when intact, export a new signed checkpoint
                 (IMAGING_AUDIT_CHECKPOINT_DIR, default $IMAGING_DATA_DIR/audit-checkpoints) and print it
    checkpoint   print the newest exported checkpoint (--new: verify, export and print a new one)
    purge        delete rows older than IMAGING_AUDIT_RETENTION_DAYS (>= 180) as the audit owner
                 (IMAGING_AUDIT_OWNER_DATABASE_URL, else DATABASE_URL), keeping the chain anchored

Needs the installation's HMAC key (IMAGING_AUDIT_HMAC_KEY or IMAGING_AUDIT_HMAC_KEY_FILE; in
development the one generated under $IMAGING_DATA_DIR/keys/). Exit 0 intact, 1 broken or refused,
2 cannot run (no audit schema, no key).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import asyncpg

from imaging_common import audit
from imaging_common.audit import checkpoint as checkpoints
from imaging_common.audit.keys import AuditKeyError, AuditSettings, load_key


def _err(message: str) -> None:
    print(message, file=sys.stderr)


async def _verify(conn: asyncpg.Connection, settings: AuditSettings, args: argparse.Namespace,
                  key: audit.AuditKey | None) -> int:
    if key is None:  # development before any writer made the key: only rows before the switch can be checked
        report = await audit.verify(conn, key=None)
        print(report, file=sys.stdout if report.ok else sys.stderr)
        if report.ok:
            print(f"no audit HMAC key ({Path(settings.data_dir) / 'keys' / 'audit-hmac.key'} does not exist yet): "
                  "no checkpoint exported")
        return 0 if report.ok else 1
    chain_id = await conn.fetchval("SELECT chain_id::text FROM audit.audit_chain WHERE id")
    folder = settings.checkpoint_dir()
    if args.checkpoint:
        try:
            last: checkpoints.Checkpoint | None = checkpoints.load(Path(args.checkpoint))
        except (OSError, checkpoints.CheckpointError) as exc:
            _err(f"cannot read checkpoint {args.checkpoint}: {exc}")
            return 2
    else:
        last, problems = checkpoints.latest(folder, key, chain_id)
        if problems:
            for problem in problems:
                _err(f"audit checkpoint REFUSED: {problem}")
            return 1
    report = await audit.verify(conn, key=key, checkpoint=last)
    if not report.ok:
        _err(str(report))
        return 1
    against = f"; agrees with the checkpoint of row {last.seq} ({last.at})" if last else "; no earlier checkpoint"
    print(f"{report}{against}")
    if not args.no_export:
        made = audit.make_checkpoint(report, key)
        path = checkpoints.export(made, folder)
        print(f"checkpoint exported to {path}")
        print(made.to_json())
    return 0


async def _run(args: argparse.Namespace) -> int:
    settings = AuditSettings()
    try:
        key = load_key(settings)
    except AuditKeyError as exc:
        _err(str(exc))
        return 2
    if args.command == "checkpoint" and not args.new:
        if key is None:
            _err("no audit HMAC key here (IMAGING_AUDIT_HMAC_KEY[_FILE]); nothing to show")
            return 2
        last, problems = checkpoints.latest(settings.checkpoint_dir(), key)
        for problem in problems:
            _err(f"audit checkpoint REFUSED: {problem}")
        if last is None:
            _err(f"no checkpoint in {settings.checkpoint_dir()}")
            return 1
        print(last.to_json())
        return 1 if problems else 0
    url = settings.database_url
    if args.command == "purge" and settings.audit_owner_database_url:
        url = settings.audit_owner_database_url
    conn = await asyncpg.connect(url, timeout=5)
    try:
        if await conn.fetchval("SELECT to_regclass('audit.audit_chain')") is None:
            _err("no audit schema in this database; run `make migrate` first")
            return 2
        if args.command in ("verify", "checkpoint"):
            if args.command == "checkpoint":
                args.checkpoint, args.no_export = None, False
            return await _verify(conn, settings, args, key)
        days = args.retention_days or settings.audit_retention_days
        try:
            count = await audit.purge_older_than_days(conn, days, actor="cli:purge")
        except (ValueError, RuntimeError, PermissionError) as exc:
            _err(f"purge refused: {exc}")
            return 1
        print(f"purged {count} audit row(s) older than {days} days; chain re-anchored")
        return 0
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imaging_common.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify the HMAC chain against the last checkpoint, then export one")
    verify.add_argument("--checkpoint", help="compare with this checkpoint file instead of the newest exported")
    verify.add_argument("--no-export", action="store_true", help="do not export a new checkpoint")
    show = sub.add_parser("checkpoint", help="print the newest exported checkpoint")
    show.add_argument("--new", action="store_true", help="verify, export and print a new checkpoint")
    purge = sub.add_parser("purge", help="delete rows older than the retention (as the audit owner)")
    purge.add_argument("--retention-days", type=int, default=None,
                       help="override IMAGING_AUDIT_RETENTION_DAYS (at least 180)")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
