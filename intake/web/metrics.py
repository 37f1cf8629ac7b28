"""``GET /metrics``: Prometheus figures, computed from the database at each scrape.

Why from the database rather than counters in each process (prometheus-client's
multiprocess mode): the work is done by other processes (``intake worker``
on other hosts), the figures must agree whichever gunicorn worker answers,
and they survive restarts without a shared ``PROMETHEUS_MULTIPROC_DIR``. A
scrape costs a handful of grouped COUNT queries.

Off by default: without ``INTAKE_METRICS_ALLOW`` (addresses/CIDRs) or
``INTAKE_METRICS_TOKEN`` (a bearer token) the page is a 404. With both set,
a scrape must come from an allowed address AND carry the token. A refused
scrape is a 404 too. Labels hold only values intake defines (channel, rule
id, agency id, work kind, mailbox name): never personal data.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from intake.runtime import Runtime
from intake.services.metrics import Figures, figures

bp = Blueprint("metrics", __name__)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _allowed(runtime: Runtime) -> bool:
    settings = runtime.settings
    if not settings.metrics_allow and not settings.metrics_token:
        return False
    if settings.metrics_allow:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        if not any(address in ipaddress.ip_network(net) for net in settings.metrics_allow):
            return False
    if settings.metrics_token:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), settings.metrics_token.encode()):
            return False
    return True


class _Collector:
    def __init__(self, data: Figures) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        d = self.data
        submissions = CounterMetricFamily(
            "intake_submissions", "Entries stored, by channel (web, email).", labels=["channel"])
        for channel, n in sorted(d.submissions.items()):
            submissions.add_metric([channel], n)
        yield submissions
        routing = CounterMetricFamily(
            "intake_routing_decisions",
            "Routing decisions by the rule that decided ((none): the default route or a staff "
            "reroute) and the agency routed to.", labels=["rule", "agency"])
        for (rule, agency), n in sorted(d.routing.items()):
            routing.add_metric([rule, agency], n)
        yield routing
        yield CounterMetricFamily("intake_staff_reroutes",
                                  "Entries staff sent to another agency.", value=d.reroutes)
        deliveries = GaugeMetricFamily(
            "intake_deliveries",
            "Delivery work items (forwards, acknowledgements, relays) by result: delivered, "
            "pending, sending, dead_letter.", labels=["kind", "result"])
        for (kind, result), n in sorted(d.deliveries.items()):
            deliveries.add_metric([kind, result], n)
        yield deliveries
        retrying = GaugeMetricFamily(
            "intake_deliveries_retrying",
            "Pending deliveries that failed transiently at least once (destination down).",
            labels=["kind"])
        for kind, n in sorted(d.retrying.items()):
            retrying.add_metric([kind], n)
        yield retrying
        work = GaugeMetricFamily("intake_work_items", "Work items by kind and state.",
                                 labels=["kind", "state"])
        for (kind, state), n in sorted(d.work_items.items()):
            work.add_metric([kind, state], n)
        yield work
        dead = GaugeMetricFamily("intake_dead_letters",
                                 "Work items that failed for good (intake jobs status says why).",
                                 labels=["kind"])
        for kind, n in sorted(d.dead_letters.items()):
            dead.add_metric([kind], n)
        yield dead
        ages = GaugeMetricFamily("intake_queue_oldest_age_seconds",
                                 "Age of the oldest pending or running work item, by kind.",
                                 labels=["kind"])
        for kind, age in sorted(d.oldest_pending_seconds.items()):
            ages.add_metric([kind], age)
        yield ages
        yield GaugeMetricFamily("intake_quarantined_messages",
                                "E-mails kept raw because they could not be stored.",
                                value=d.quarantined)
        lag = GaugeMetricFamily("intake_mailbox_poll_lag_seconds",
                                "Seconds since the mailbox was last polled.",
                                labels=["mailbox"])
        errors = GaugeMetricFamily("intake_mailbox_error",
                                   "1 when the mailbox's last poll failed.", labels=["mailbox"])
        for name, seconds in sorted(d.poll_lag_seconds.items()):
            lag.add_metric([name], seconds)
            errors.add_metric([name], d.mailbox_errors.get(name, 0))
        yield lag
        yield errors
        yield GaugeMetricFamily("intake_live_workers",
                                "Worker processes with a fresh heartbeat.", value=d.live_workers)


@bp.get("/metrics")
def metrics() -> Response:
    runtime = _runtime()
    if not _allowed(runtime):
        abort(404)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures(runtime.db, runtime.settings.heartbeat_stale_seconds)))
    response = Response(generate_latest(registry), mimetype=None)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response
