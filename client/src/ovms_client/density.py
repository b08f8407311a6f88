"""Stream density: the largest number of streams that each sustain a target frame rate.

The search is bounded in both streams (`max_streams`) and trials (MAX_TRIALS): from one stream
it gallops upwards while trials pass (at least doubling the step, at least to what the measured
total frame rate would feed), then narrows down between the best pass and the lowest failure,
guided by the failing trial's total rate, bisecting when that does not help. A run of k trials
costs about k x (warm-up + trial time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Trials tried at most in one search: 1 stream, the estimate, and a few steps either way.
MAX_TRIALS = 10


@dataclass(frozen=True)
class Trial:
    streams: int
    fps: tuple[float, ...]  # per stream

    @property
    def min_fps(self) -> float:
        return min(self.fps) if self.fps else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "streams": self.streams,
            "min_fps": round(self.min_fps, 2),
            "total_fps": round(sum(self.fps), 2),
            "fps": [round(f, 2) for f in self.fps],
        }


@dataclass
class DensityResult:
    target_fps: float
    max_streams: int
    streams: int = 0
    trials: list[Trial] = field(default_factory=list)
    # True when the search stopped at max_streams or MAX_TRIALS with every trial passing.
    capped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "stream_density",
            "streams": self.streams,
            "target_fps": self.target_fps,
            "max_streams": self.max_streams,
            "capped": self.capped,
            "trials": [t.to_json() for t in self.trials],
        }


def find_density(
    trial: Callable[[int], Sequence[float]],
    target_fps: float,
    max_streams: int,
    max_trials: int = MAX_TRIALS,
) -> DensityResult:
    """`trial(n)` runs n streams and returns each one's frames/s."""
    result = DensityResult(target_fps, max_streams)
    measured: dict[int, Trial] = {}

    def passes(n: int) -> bool:
        if n not in measured:
            measured[n] = Trial(n, tuple(trial(n)))
            result.trials.append(measured[n])
            log.info(
                "stream density: %d stream(s): slowest %.2f fps, total %.2f fps (%s)",
                n,
                measured[n].min_fps,
                sum(measured[n].fps),
                "pass" if measured[n].min_fps >= target_fps else "fail",
            )
        return measured[n].min_fps >= target_fps

    if not passes(1):
        return result
    best, failed = 1, max_streams + 1

    def by_throughput(n: int) -> int:
        """How many streams the total frame rate measured with n streams would feed."""
        return math.floor(sum(measured[n].fps) / target_fps)

    # Upwards: at least double the step each pass (more streams usually add parallelism, so
    # one stream's estimate is low), at least what the measured total would feed.
    step = 1
    candidate = max(2, by_throughput(1))
    while best + 1 < failed and len(measured) < max_trials:
        candidate = min(max(candidate, best + 1), failed - 1)
        if passes(candidate):
            best = candidate
            candidate = max(best + step, by_throughput(best))
            step *= 2
        else:
            failed = candidate
            # Downwards: a failing trial that saturated the server tells the answer directly.
            candidate = by_throughput(failed)
            if candidate <= best:
                candidate = (best + failed) // 2
    result.streams = best
    result.capped = failed > max_streams
    return result
