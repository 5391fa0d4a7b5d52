"""The worker's Prometheus metrics (docs/metrics.md), in prometheus_client's default registry,
which the worker's metrics server (`VOXKEEP_METRICS_PORT`, `voxkeep/jobs/scrape.py`) serves
with LiveKit's.

LiveKit runs each job in a process of its own, so the worker collects in prometheus_client's
multiprocess mode (`voxkeep/worker/main.py` sets it up before anything imports the client): every
process writes its values to a shared folder and the server adds them up. Labels are kinds,
types, codes and outcomes; never a caller, chat, room or message.

Every metric has labels, so no process writes a value before it is used: LiveKit empties the
shared folder as the worker starts, after this module is imported.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

BACKLOG = Gauge(
    "voxkeep_writer_backlog",
    "What the writers hold that is not committed yet: records in their queues (place=queue), "
    "records and bytes in their journals (place=journal).",
    ["place", "unit"],
    multiprocess_mode="livesum",
)
COMMIT_SECONDS = Histogram(
    "voxkeep_store_commit_seconds",
    "Time for one store transaction, by kind (write, close_chat, claim_chat, ...).",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
COMMIT_FAILURES = Counter(
    "voxkeep_store_commit_failures",
    "Store transactions that failed, by kind and error code (unavailable, store, ...).",
    ["kind", "error"],
)
CONTROL_REQUESTS = Counter(
    "voxkeep_control_requests",
    "Control commands answered, by command type and reply code (ok or the error's code).",
    ["type", "code"],
)
RESUMES = Counter(
    "voxkeep_resume",
    "How calls chose their chat: resumed, new, or refused (with the reason).",
    ["outcome", "reason"],
)
TAKEOVERS = Counter(
    "voxkeep_takeovers", "Chats a call took over from another live call, by backend.", ["backend"]
)
SWEEPER = Counter(
    "voxkeep_sweeper_actions",
    "What the sweeper did: calls_lost, chats_lost, chats_deleted, retention_deleted, "
    "events_expired, purges.",
    ["action"],
)
PROSODY_SECONDS = Histogram(
    "voxkeep_prosody_analysis_seconds",
    "Time to measure one user utterance's prosody.",
    buckets=_LATENCY_BUCKETS,
)
SUMMARIES = Counter(
    "voxkeep_summaries", "Background summaries of long chats, by result (ok, failed).", ["result"]
)
WEBHOOK_DELIVERIES = Counter(
    "voxkeep_webhook_deliveries",
    "Webhook delivery attempts, by event type and result (ok, http_error, timeout, unreachable).",
    ["type", "result"],
)


def queue_records() -> Gauge:
    return BACKLOG.labels(place="queue", unit="records")


def journal_records() -> Gauge:
    return BACKLOG.labels(place="journal", unit="records")


def journal_bytes() -> Gauge:
    return BACKLOG.labels(place="journal", unit="bytes")
