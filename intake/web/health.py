"""``GET /healthz``: database, broker, jobs and rules status as JSON."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from intake.runtime import Runtime

bp = Blueprint("health", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    runtime = _runtime()
    settings = runtime.settings
    body: dict[str, Any] = {}
    healthy = True

    try:
        runtime.db.ping()
        database: dict[str, Any] = {"ok": True, "kind": settings.database_kind,
                                    "schema_current": runtime.schema_is_current()}
        healthy = healthy and database["schema_current"]
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        database = {"ok": False, "kind": settings.database_kind, "error": type(exc).__name__}
        healthy = False
    body["database"] = database

    from intake.jobs.system import BrokerUnavailable, check_broker

    try:
        check_broker(runtime.jobs.broker, settings)
        broker: dict[str, Any] = {"ok": True, "kind": settings.broker_kind}
    except BrokerUnavailable as exc:
        # Work is durable in the database; a broker outage delays it, loses nothing.
        broker = {"ok": False, "kind": settings.broker_kind, "error": str(exc)}
    body["broker"] = broker

    if database["ok"]:
        try:
            body["work_items"] = runtime.jobs.counts()
        except Exception as exc:  # noqa: BLE001
            body["work_items"] = {"error": type(exc).__name__}
    stats = runtime.jobs.stats
    body["jobs"] = {
        "performed": stats.performed,
        "failed": stats.failed,
        "swept": stats.swept,
        "last_sweep_at": stats.last_sweep_at.isoformat() if stats.last_sweep_at else None,
    }
    body["rules"] = runtime.rules.status()
    # Where the rate-limit counters live (the kind only: a Redis URL may hold a password).
    limits_at = settings.rate_limit_url
    body["rate_limits"] = {"kind": limits_at if limits_at in ("database", "memory") else "redis",
                           "shared_by_processes": limits_at != "memory"}
    body["secret_key"] = "ephemeral" if settings.secret_key_is_ephemeral else "configured"
    body["status"] = "ok" if healthy else "unavailable"
    return jsonify(body), 200 if healthy else 503
