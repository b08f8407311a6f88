"""The client's one connection to the server, shared by every stream, and its outages.

When a request finds the server gone, the link goes down once: a single log line, one
background probe that backs off until the model is ready again, and every worker parks until
then and retries its frame. Per-frame failures therefore never reach the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from ovms_client.api import ModelInfo, ServingApi
from ovms_client.errors import ClientError, ServerNotReadyError, ServerUnavailable

log = logging.getLogger(__name__)

PROBE_INITIAL_S = 0.25
PROBE_MAX_S = 5.0
STILL_DOWN_EVERY_S = 60.0


class ServerLink:
    def __init__(
        self,
        api: ServingApi,
        model_name: str,
        stop: threading.Event,
        probe_initial: float = PROBE_INITIAL_S,
        probe_max: float = PROBE_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.model_name = model_name
        self.stop = stop
        self.probe_initial = probe_initial
        self.probe_max = probe_max
        self.clock = clock
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._generation = 0
        self._probe: threading.Thread | None = None
        self.outages = 0

    @property
    def up(self) -> bool:
        return self._up.is_set()

    def wait_ready(self, timeout: float) -> ModelInfo:
        """Block until the model is ready (at least one try), then return its metadata."""
        deadline = self.clock() + timeout
        delay = self.probe_initial
        last = "model reported not ready"
        logged = False
        while True:
            try:
                if self.api.model_ready():
                    info = self.api.model_info()
                    self._up.set()
                    return info
                last = "model reported not ready"
            except ServerUnavailable as exc:
                last = str(exc)
            if self.stop.is_set():
                raise StopRequested
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise ServerNotReadyError(
                    f"model '{self.model_name}' on {self.api.address} was not ready within "
                    f"ready_timeout={timeout:g} s; last answer: {last.rstrip('.')}. Check that "
                    f"the server runs, the address/port and TLS settings, and the model's status."
                )
            if not logged:
                log.info(
                    "waiting up to %g s for model '%s' on %s: %s",
                    timeout,
                    self.model_name,
                    self.api.address,
                    last,
                )
                logged = True
            self.stop.wait(min(delay, remaining))
            delay = min(delay * 2, self.probe_max)

    def infer(
        self, input_name: str, tensor: np.ndarray, on_failure: Callable[[], None] | None = None
    ) -> tuple[dict[str, np.ndarray], float]:
        """Run one request, riding out outages; returns (outputs, seconds of the good try).

        `on_failure` is called for each try the server turned away (for error counters).
        Raises StopRequested once stop is set while the server is down.
        """
        while True:
            while not self._up.wait(0.2):
                if self.stop.is_set():
                    raise StopRequested
            generation = self._generation
            started = time.perf_counter()
            try:
                outputs = self.api.infer(input_name, tensor)
                return outputs, time.perf_counter() - started
            except ServerUnavailable as exc:
                if on_failure is not None:
                    on_failure()
                self._went_down(generation, str(exc))
                if self.stop.is_set():
                    raise StopRequested from None

    def _went_down(self, generation: int, reason: str) -> None:
        with self._lock:
            # Several workers fail for the same outage; only the first one reports it.
            if generation != self._generation or not self._up.is_set():
                return
            self._up.clear()
            self.outages += 1
            log.warning("server unavailable, pausing and retrying until it is back: %s", reason)
            self._probe = threading.Thread(target=self._recover, name="server-probe", daemon=True)
            self._probe.start()

    def _recover(self) -> None:
        since = self.clock()
        next_notice = since + STILL_DOWN_EVERY_S
        delay = self.probe_initial
        while not self.stop.is_set():
            try:
                if self.api.model_ready():
                    with self._lock:
                        self._generation += 1
                        self._up.set()
                    log.warning("server back after %.1f s; resuming", self.clock() - since)
                    return
            except (ServerUnavailable, ClientError) as exc:
                # A server coming back may answer oddly for a moment (e.g. a proxy up before
                # OVMS); keep probing rather than ending a long-running client.
                log.debug("probe: %s", exc)
            now = self.clock()
            if now >= next_notice:
                log.warning("server still unavailable after %.0f s", now - since)
                next_notice = now + STILL_DOWN_EVERY_S
            self.stop.wait(delay)
            delay = min(delay * 2, self.probe_max)

    def close(self) -> None:
        self.api.close()


class StopRequested(Exception):
    """Stop was requested while a request was waiting for the server."""
