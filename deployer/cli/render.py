"""The text a command prints for a person, made from the data it prints with --output json.
Pure functions of that data: no AWS, no click.
"""

from __future__ import annotations

from typing import Any


def record_data(record: Any) -> dict[str, Any]:
    from deployer.ops.operations import record_json

    return record_json(record)


def minutes(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def infra_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        if row["action"] == "unchanged":
            continue
        lines.append(f"  {row['action']} stack {row['stack']}")
        lines += [f"    {c['action']:<8} {c['resource']} ({c['type']})" for c in row["changes"]]
        lines += [
            f"    parameter {p['name']}: {p['from']!r} -> {p['to']!r}" for p in row["parameters"]
        ]
    return lines


def plan_text(data: dict[str, Any]) -> str:
    """`deployer plan`: nothing to do, or what a release would do and how long it would take."""
    if data["noop"]:
        return "\n".join([f"nothing to do: {data['reason']}", *infra_lines(data["infra"])])
    lines = [
        f"release {data['version']} ({data['digest'][:12]}) on {data['target']}: {data['reason']}",
        *infra_lines(data["infra"]),
        "  image: "
        + (
            f"bake a new one ({', '.join(data['bake_changed'])} changed)"
            if data["bake"]
            else f"reuse {data['image']}"
        ),
        "  fleet: "
        + (f"reuse {data['reuse_fleet']}" if data["reuse_fleet"] else "a new one")
        + f" x{data['capacity']}",
        *[f"  {s['name']}, held {s['hold_seconds']}s" for s in data["steps"]],
        f"  watch {data['watch_seconds']}s" if data["watch_seconds"] else "",
        *[f"  retire {stack}" for stack in data["retire"]],
        "  predicted on AWS's clock, with steady traffic:",
        *[
            f"    {row['what']:<28} {minutes(row['seconds']):>7}  ({row['why']})"
            for row in data["timing"]
        ],
        f"    {'in all':<28} {minutes(data['predicted_seconds']):>7}",
    ]
    return "\n".join(line for line in lines if line)


def status_text(data: dict[str, Any]) -> str:
    """`deployer status`: what is live, its fleets, the last run, the lock, what to do."""
    lines = [
        f"{data['app']}/{data['environment']} on {data['target']}",
        f"live: {data['live_version'] or 'nothing'}",
        f"url:  {data['url'] or '-'}",
    ]
    for fleet in data["fleets"]:
        lines.append(
            f"  {fleet['role']:5} {fleet['version']:<12} weight {fleet['weight']:>3}  "
            f"{fleet['healthy']}/{fleet['desired']} healthy  {fleet['stack']}"
        )
    if data["last"]:
        last = data["last"]
        lines.append(
            f"last: {last['kind']} {last['version']} {last['outcome']} "
            f"({last['started_at']}, {last['actor']}) {last['reason']}".rstrip()
        )
    if data.get("execution"):
        run = data["execution"]
        lines.append(f"in AWS: {run['status']} at {run['step']}: {run['arn']}")
    if data["lock"]:
        lines.append(f"lock: {data['lock']}")
    lines += [
        f"infra: {s['stack']} {s['status']}"
        for s in data["infra"]
        if not s["status"].endswith("_COMPLETE") or "ROLLBACK" in s["status"]
    ]
    lines += [f"warn: {warning}" for warning in data["warnings"]]
    if data["advice"]:
        lines.append(f"todo: {data['advice']}")
    return "\n".join(lines)


def history_text(records: list[dict[str, Any]], execs: list[dict[str, Any]], limit: int) -> str:
    """`deployer history`: releases, rollbacks and execs in one list, newest first."""
    rows = [
        (
            str(r["started_at"]),
            f"{r['started_at']}  {r['kind']:8} {r['version']:<12} {r['outcome']:<11} "
            f"{r['actor']}  {r['reason']}".rstrip(),
        )
        for r in records
    ] + [
        (
            str(x["started_at"]),
            f"{x['started_at']}  exec     {x['version']:<12} {x['outcome']:<11} "
            f"{x['actor']}  {' '.join(map(str, x['command']))}: {x['reason']}".rstrip(),
        )
        for x in execs
    ]
    lines = [text for _, text in sorted(rows, key=lambda row: row[0], reverse=True)][:limit]
    return "\n".join(lines) or "no releases recorded"
