"""Sends authorization events to Stele's OTLP/HTTP logs receiver with the official
OpenTelemetry Python SDK and its OTLP/HTTP (protobuf) exporter, through Python's standard
logging, the way an application would. Used by tests/tests/otlp.rs.

usage: send_logs.py BASE_URL RUN_ID
Prints one line per exporter: "<name> ok" once its records are exported.
"""

import logging
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def send(base_url: str, run_id: str, name: str, compression: Compression) -> None:
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "billing-api", "service.version": "7.1"})
    )
    exporter = OTLPLogExporter(
        endpoint=f"{base_url}/v1/logs", compression=compression, timeout=10
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    log = logging.getLogger(f"authz.{name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.warning(
        "%s: read of doc-42 denied",
        run_id,
        extra={
            "enduser.id": "alice",
            "client.address": "203.0.113.9",
            "stele.action": "document.read",
            "stele.resource.type": "document",
            "stele.resource.id": "doc-42",
            "stele.outcome": "deny",
            "stele.policy.id": "finance-only",
            "stele.policy.version": "12",
            "exporter": name,
        },
    )
    log.info(
        "%s: role granted", run_id, extra={"enduser.id": "bob", "stele.action": "role.grant", "exporter": name}
    )
    log.removeHandler(handler)
    if not provider.force_flush(10_000):
        sys.exit(f"{name}: flush timed out")
    provider.shutdown()
    print(f"{name} ok", flush=True)


def main() -> None:
    base_url, run_id = sys.argv[1], sys.argv[2]
    send(base_url, run_id, "plain", Compression.NoCompression)
    send(base_url, run_id, "gzip", Compression.Gzip)


if __name__ == "__main__":
    main()
