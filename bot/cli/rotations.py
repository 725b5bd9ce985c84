"""`usage-bot rotations [ID]`: the rotations in the database, and one's audit trail.

Read-only: the checklist is moved in Slack, where every action names its person;
this is where an incident review reads what happened, from DATABASE_URL.
"""

import argparse
import json
import sys
from typing import Any

from bot.config import Settings
from bot.errors import BotError
from bot.render import tables
from bot.render.tables import Column, Table
from bot.rotation.service import RotationService, RotationView
from bot.store import AuditRecord, Store

EXIT_OK, EXIT_BAD_INPUT = 0, 2
RECENT = 20


def register(commands: Any) -> None:
    """Add `rotations` to the parser."""
    parser = commands.add_parser(
        "rotations", help="token rotations and their audit log (read-only)"
    )
    parser.add_argument("id", nargs="?", help="a rotation id: its steps and audit log")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run_rotations)


async def run_rotations(args: argparse.Namespace, settings: Settings) -> int:
    """List the latest rotations, or show one with every audited action."""
    from bot.slack.rotation import rotation_id

    try:
        wanted = None if args.id is None else rotation_id(args.id)
        store = await Store.open(settings.database_url)
    except BotError as exc:
        print(f"{exc}\nUsage: usage-bot rotations [ID] [--json]", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        service = RotationService(store, settings)
        if wanted is None:
            views = await service.recent(RECENT)
            _print(
                as_json=args.json,
                doc=[_summary(v) for v in views],
                text=rotations_list(views),
            )
            return EXIT_OK
        try:
            view = await service.get(wanted)
        except BotError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_BAD_INPUT
        audit = await store.audit_entries(target=f"rotation:{view.id}", limit=1000)
        doc = {**_summary(view), "steps": _steps(view), "audit": _audit(audit)}
        _print(as_json=args.json, doc=doc, text=rotation_report(view, audit))
        return EXIT_OK
    finally:
        await store.close()


def _print(*, as_json: bool, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2) if as_json else text)


def _summary(view: RotationView) -> dict[str, Any]:
    return {
        "id": view.id,
        "token": view.token_name,
        "status": view.status.value,
        "progress": f"{view.finished}/{view.total}",
        "started_by": view.started_by,
        "started_at": view.started_at.isoformat(),
        "closed_by": view.closed_by,
        "closed_at": view.closed_at.isoformat() if view.closed_at else None,
    }


def _steps(view: RotationView) -> list[dict[str, Any]]:
    return [
        {
            "number": step.number,
            "title": step.title,
            "state": step.state.value,
            "by": step.actor,
            "at": step.updated_at.isoformat() if step.updated_at else None,
            "evidence": step.evidence,
        }
        for step in view.steps
    ]


def _audit(entries: list[AuditRecord]) -> list[dict[str, Any]]:
    return [
        {
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "outcome": entry.outcome,
            "request": entry.request_id,
            "details": entry.details,
        }
        for entry in entries
    ]


def rotations_list(views: list[RotationView]) -> str:
    """The latest rotations as a table."""
    if not views:
        return "No rotations yet."
    table = Table(
        "Token rotations, newest first",
        [Column("id"), *(Column(n, "left") for n in ("token", "status")),
         Column("done"), *(Column(n, "left") for n in ("started by", "started"))],
        [
            [str(v.id), v.token_name, v.status.value, f"{v.finished}/{v.total}",
             v.started_by, _when(v.started_at)]
            for v in views
        ],
    )  # fmt: skip
    return f"{table.title}\n{tables.to_text(table)}"


def rotation_report(view: RotationView, audit: list[AuditRecord]) -> str:
    """One rotation's steps, their evidence and its audit log, as text."""
    steps = Table(
        f"Rotation #{view.id} of {view.token_name}: {view.status.value}, "
        f"{view.finished} of {view.total} done, started by {view.started_by} "
        f"at {_when(view.started_at)}",
        [Column("step"), *(Column(n, "left") for n in ("state", "by", "at", "title"))],
        [
            [str(s.number), s.state.value, s.actor or "", _when(s.updated_at),
             s.title]
            for s in view.steps
        ],
    )  # fmt: skip
    evidence = [
        f"  step {s.number}: {s.evidence}" for s in view.steps if s.evidence is not None
    ]
    log = Table(
        "Audit log",
        [Column(n, "left") for n in ("at", "who", "action", "outcome", "details")],
        [
            [_when(e.at), e.actor, e.action, e.outcome,
             json.dumps(e.details, sort_keys=True) if e.details else ""]
            for e in audit
        ],
    )  # fmt: skip
    parts = [steps.title, tables.to_text(steps)]
    if evidence:
        parts += ["Evidence", *evidence]
    parts += ["", log.title, tables.to_text(log)]
    return "\n".join(parts)


def _when(moment: Any) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")
