"""Streams: a reader thread per stream feeds a bounded queue; N workers per stream keep N
requests in flight, so decode and preprocessing overlap with inference."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovms_client.adapters import Adapter
from ovms_client.crops import CropClassifier
from ovms_client.errors import ClientError, ExitCode
from ovms_client.exporters import Annotator
from ovms_client.link import ServerLink, StopRequested
from ovms_client.preprocess import Preprocess
from ovms_client.results import Metrics, OrderedEmitter
from ovms_client.settings import InputSpec
from ovms_client.sources import Frame, FrameSource

log = logging.getLogger(__name__)

_END = None  # queue sentinel: the reader is done


@dataclass
class Job:
    seq: int
    frame: Frame
    tensor: np.ndarray
    read_at: float


class Failure:
    """The first fatal error any thread hit; it decides the exit code."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self.error: ClientError | None = None
        self.unexpected: BaseException | None = None

    def report(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None and self.unexpected is None:
                if isinstance(exc, ClientError):
                    self.error = exc
                else:
                    self.unexpected = exc
        self._stop.set()

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error.exit_code
        if self.unexpected is not None:
            return ExitCode.INTERNAL
        return ExitCode.OK


class StreamRunner:
    def __init__(
        self,
        spec: InputSpec,
        source: FrameSource,
        link: ServerLink,
        input_name: str,
        preprocess: Preprocess,
        adapter: Adapter,
        emitter: OrderedEmitter,
        metrics: Metrics,
        stop: threading.Event,
        failure: Failure,
        in_flight: int,
        max_frames: int,
        annotator: Annotator | None = None,
        classifier: CropClassifier | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.link = link
        self.input_name = input_name
        self.preprocess = preprocess
        self.adapter = adapter
        self.emitter = emitter
        self.metrics = metrics
        self.stop = stop
        self.failure = failure
        self.in_flight = in_flight
        self.max_frames = max_frames
        self.annotator = annotator
        self.classifier = classifier
        # Room for one frame per worker plus one being prepared per worker: enough to keep
        # every worker busy, small enough that live frames are not stale when sent.
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=2 * in_flight)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        name = self.spec.stream_id
        self._threads.append(
            threading.Thread(
                target=self._guard, args=(self._read,), name=f"{name}-reader", daemon=True
            )
        )
        for index in range(self.in_flight):
            self._threads.append(
                threading.Thread(
                    target=self._guard,
                    args=(self._work,),
                    name=f"{name}-worker{index}",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _guard(self, target: Any) -> None:
        try:
            target()
        except BaseException as exc:
            if not isinstance(exc, ClientError):
                log.exception("stream %s: unexpected error", self.spec.stream_id)
            self.failure.report(exc)

    def _read(self) -> None:
        seq = 0
        try:
            while not self.stop.is_set():
                if self.max_frames and seq >= self.max_frames:
                    break
                frame = self.source.read()
                if frame is None:
                    break
                read_at = time.monotonic()
                job = Job(seq, frame, self.preprocess(frame.image), read_at)
                if self._enqueue(job):
                    seq += 1
        finally:
            self.source.close()
            for _worker in range(self.in_flight):
                self._put_end()

    def _enqueue(self, job: Job) -> bool:
        """False when the job was not queued (stopping)."""
        if self.source.live:
            # A live source cannot wait: the oldest queued frame gives way to the newest.
            while True:
                try:
                    self._queue.put_nowait(job)
                    return True
                except queue.Full:
                    try:
                        dropped = self._queue.get_nowait()
                    except queue.Empty:
                        continue
                    if dropped is not None:
                        self.emitter.complete(dropped.seq, None)
                        self.metrics.frame_dropped(self.spec.stream_id)
        while not self.stop.is_set():
            try:
                self._queue.put(job, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.2)
                return
            except queue.Full:
                if not self.stop.is_set():
                    # End of input: the workers are still busy with real frames; wait for room.
                    continue
                # Stopping with a full queue: discard a frame to make room for the sentinel.
                try:
                    job = self._queue.get_nowait()
                    if job is not None:
                        self.emitter.complete(job.seq, None)
                except queue.Empty:
                    pass

    def _request_failed(self) -> None:
        self.metrics.request_failed(self.spec.stream_id)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END:
                return
            if self.stop.is_set():
                self.emitter.complete(job.seq, None)
                continue
            try:
                outputs, latency = self.link.infer(
                    self.input_name, job.tensor, self._request_failed
                )
            except StopRequested:
                self.emitter.complete(job.seq, None)
                continue
            except BaseException:
                self.emitter.complete(job.seq, None)
                raise
            image = job.frame.image
            height, width = image.shape[:2]
            results = self.adapter(outputs, width, height)
            classify_s: float | None = None
            if self.classifier is not None:
                try:
                    results, classify_s = self.classifier(image, results)
                except StopRequested:
                    self.emitter.complete(job.seq, None)
                    continue
            record: dict[str, Any] = {
                "type": "detections",
                "stream": self.spec.stream_id,
                "frame": job.frame.index,
                "timestamp": round(job.frame.timestamp, 3),
                "width": width,
                "height": height,
                "latency_ms": round(latency * 1000.0, 2),
                self.adapter.kind: [result.to_json() for result in results],
            }
            if classify_s is not None:
                record["classify_ms"] = round(classify_s * 1000.0, 2)
            if job.frame.position_ms is not None:
                record["position_ms"] = round(job.frame.position_ms, 1)
            if self.annotator is not None:
                self.annotator.write(self.spec.stream_id, job.frame.index, image, results)
            self.emitter.complete(job.seq, record)
            self.metrics.frame_done(self.spec.stream_id, latency, time.monotonic() - job.read_at)
