"""A tracking server stand-in for the fail-soft tests: answers the few REST calls an MLflow run makes,
records them, and can fail a metrics batch or stop listening (a server dying mid-run) on cue."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

RUN_INFO = {
    "run_id": "r1",
    "run_uuid": "r1",
    "experiment_id": "1",
    "status": "RUNNING",
    "start_time": 1,
    "lifecycle_stage": "active",
    "artifact_uri": "file:///nowhere",
}


class FakeTrackingServer:
    """``die_after``: stop listening right after answering that many metric batches;
    ``reject``: answer that metric batch (1-based) with HTTP 400, which MLflow does not retry."""

    def __init__(self, *, die_after: int | None = None, reject: int | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.metric_batches = 0
        self.stopped = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake.answer(self, {})

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                fake.answer(self, json.loads(self.rfile.read(size) or b"{}"))

        self.die_after, self.reject = die_after, reject
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if self.stopped.is_set():  # dead already: a request that slipped in before shutdown gets no answer
            handler.close_connection = True
            return
        endpoint = urlparse(handler.path).path.rsplit("/mlflow/", 1)[-1]
        self.calls.append((endpoint, body))
        reply: dict[str, Any] = {}
        code = 200
        if endpoint == "experiments/get-by-name":
            code, reply = 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"}
        elif endpoint == "experiments/create":
            reply = {"experiment_id": "1"}
        elif endpoint == "runs/create":
            reply = {"run": {"info": RUN_INFO, "data": {}}}
        elif endpoint == "runs/update":
            reply = {"run_info": {**RUN_INFO, "status": body.get("status")}}
        elif endpoint == "runs/log-batch" and body.get("metrics"):
            self.metric_batches += 1
            if self.metric_batches == self.reject:
                code, reply = 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "rejected by test"}
        # dead before the answer leaves: a client answered at once must not get its next batch counted
        dying = (
            self.die_after is not None and self.metric_batches >= self.die_after and not self.stopped.is_set()
        )
        if dying:
            self.stopped.set()
        data = json.dumps(reply).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        if dying:
            threading.Thread(target=self.stop).start()  # shutdown() waits for this handler to return

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoints(self) -> list[str]:
        return [endpoint for endpoint, _ in self.calls]
