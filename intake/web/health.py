"""``GET /healthz`` (liveness, with diagnostics) and ``GET /readyz`` (readiness).

``/healthz`` answers 200 while the process serves: a process manager or load
balancer that restarts on it must not restart every web process when the
database blinks. Its body says how the parts are doing (``status`` is ``ok``
or ``degraded``). ``/readyz`` answers 503 naming the part that fails (the
database, the rules file, the broker, the workers' heartbeat): take the
process out of rotation, or hold a deployment, on it.
"""

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

    # No work-item counts here: a GROUP BY over the whole queue on every liveness probe
    # is not cheap (they are in /metrics and `intake jobs status`).
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
    body["status"] = "ok" if healthy else "degraded"
    return jsonify(body), 200


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Each part "ok", or what is wrong with it in a few words; 503 if any is not ok.

    No URL, path, host, address or exception text: the body may be seen by a
    load balancer's logs.
    """
    from intake.jobs.system import BrokerUnavailable, check_broker
    from intake.services.heartbeats import live_workers

    runtime = _runtime()
    settings = runtime.settings
    checks: dict[str, str] = {}
    database_ok = False
    try:
        runtime.db.ping()
        database_ok = True
        checks["database"] = ("ok" if runtime.schema_is_current()
                              else "schema not current: run intake db upgrade")
    except Exception:  # noqa: BLE001 - reported, not raised
        checks["database"] = "unreachable"
    rules = runtime.rules.status()
    checks["rules"] = "ok" if rules.get("ok") else "the rules file is invalid (intake rules check)"
    if settings.broker_url is None:
        checks["broker"] = "ok"  # embedded: in this process
    else:
        try:
            check_broker(runtime.jobs.broker, settings)
            checks["broker"] = "ok"
        except BrokerUnavailable:
            checks["broker"] = f"{settings.broker_kind} unreachable"
    stale = settings.heartbeat_stale_seconds
    if not database_ok:
        checks["workers"] = "unknown (database unreachable)"
    else:
        try:
            alive = live_workers(runtime.db, stale)
            checks["workers"] = ("ok" if alive else
                                 f"no worker heartbeat in the last {stale:g} s")
        except Exception:  # noqa: BLE001 - e.g. the table is missing before an upgrade
            checks["workers"] = "unknown (heartbeats unreadable)"
    failing = sorted(part for part, state in checks.items() if state != "ok")
    body = {"status": "ok" if not failing else "unavailable", "failing": failing,
            "checks": checks}
    return jsonify(body), 200 if not failing else 503
