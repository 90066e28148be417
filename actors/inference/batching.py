"""Dynamic batching rules (Triton's dynamic batcher, BentoML's adaptive batching), plain Python.

``BatchPolicy.wait_s(pending, oldest_age_s, now)`` says how long the dispatcher may still hold the
images waiting for an idle worker before it sends them as one batch: 0 means send now.

* A full batch (``max_size`` waiting) leaves at once.
* Nothing waits longer than ``max_delay_s`` (from the oldest image's arrival).
* Adaptive, the wait: the dispatcher waits only while more images are expected before the delay
  runs out, from the arrival rate of the last ``window_s`` (a sliding count). Under a light load
  (fewer than one arrival expected in the time left) a lone image leaves at once, with batch-1
  latency; under a heavy one it waits just long enough to fill the batch. Workers that are all
  busy make batches by themselves: images pile up, and the next free worker takes a batch at once.
* Adaptive, the size (BentoML's cost model): the workers report how long each batch took; a
  least-squares line ``seconds = fixed + per_image * size`` over the last ``samples`` batches says
  whether batching pays. A positive ``fixed`` (a cost per batch that batching shares) keeps the cap
  at ``max_size``; a negative one beyond doubt (below zero by twice its standard error: per-image
  cost that grows with the batch, as a CPU whose caches a batch overflows shows) lowers the cap to
  1, so the service runs as fast as batch 1 instead of slower; a line too noisy to tell keeps
  ``max_size``. Every ``explore_every``-th batch may hold 2, so the line keeps two
  sizes to fit (a batch of 2 costs little latency) and the cap comes back when batching starts
  to pay. Until batches of two sizes were seen, the cap is ``max_size``.
"""

from __future__ import annotations

from collections import deque

__all__ = ["BatchPolicy"]


class BatchPolicy:
    """Batch size and delay rules; arrivals are reported with ``arrived``. Times are seconds on
    the caller's clock (the actor's, which tests replace)."""

    def __init__(self, max_size: int, max_delay_s: float, *, adaptive: bool = True,
                 window_s: float = 1.0, samples: int = 100, explore_every: int = 50) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if max_delay_s < 0 or window_s <= 0:
            raise ValueError("max_delay_s must be >= 0 and window_s > 0")
        self.max_size = max_size
        self.max_delay_s = max_delay_s
        self.adaptive = adaptive
        self.window_s = window_s
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._batches: deque[tuple[int, float]] = deque(maxlen=samples)
        self.explore_every = explore_every
        self.dispatched = 0
        self._line: tuple[float, float, float] | None = None

    def observed(self, size: int, seconds: float) -> None:
        """A worker ran a batch of ``size`` images in ``seconds`` (read, infer, commit)."""
        if size > 0 and seconds > 0:
            self._batches.append((size, seconds))
            self._line = None

    def cost_line(self) -> tuple[float, float] | None:
        """(fixed seconds per batch, seconds per image) fitted to the recent batches; None until
        batches of at least two sizes were seen."""
        fit = self._fit()
        return None if fit is None else (fit[0], fit[1])

    def _fit(self) -> tuple[float, float, float] | None:
        """The cost line and the standard error of its ``fixed`` (ordinary least squares)."""
        if self._line is None and len({n for n, _ in self._batches}) >= 2:
            count = len(self._batches)
            mean_n = sum(n for n, _ in self._batches) / count
            mean_t = sum(t for _, t in self._batches) / count
            spread = sum((n - mean_n) ** 2 for n, _ in self._batches)
            slope = sum((n - mean_n) * (t - mean_t) for n, t in self._batches) / spread
            fixed = mean_t - slope * mean_n
            if count > 2:
                residual = sum((t - fixed - slope * n) ** 2 for n, t in self._batches)
                error = (residual / (count - 2) * (1 / count + mean_n ** 2 / spread)) ** 0.5
            else:
                error = 0.0
            self._line = (fixed, slope, error)
        return self._line

    def cap(self) -> int:
        """The largest batch to send now: ``max_size``, or 1 while the cost line says batching
        costs more per image than it saves (2 every ``explore_every``-th batch).

        "Says" means beyond doubt: the batches' times are noisy (images differ, and other
        processes share the cores), so the cap drops only when ``fixed`` is below zero by more
        than twice its standard error; a line that cannot tell keeps the configured size."""
        if not self.adaptive or self.max_size == 1:
            return self.max_size
        fit = self._fit()
        if fit is None or fit[0] + 2 * fit[2] > 0:
            return self.max_size
        return 2 if self.dispatched % self.explore_every == 0 else 1

    def learned_from(self, other: BatchPolicy) -> None:
        """Keep ``other``'s batch timings (new rules, same workers and model)."""
        self._batches.extend(other._batches)
        self._line = None

    def sent(self, size: int) -> None:
        """A batch left (counts batches for exploration)."""
        self.dispatched += 1

    def arrived(self, count: int, now: float) -> None:
        """``count`` images joined the queue at ``now``."""
        if count > 0:
            self._arrivals.append((now, count))
            self._in_window += count
        self._expire(now)

    def rate(self, now: float) -> float:
        """Arrivals per second over the last ``window_s``."""
        self._expire(now)
        return self._in_window / self.window_s

    def wait_s(self, pending: int, oldest_age_s: float, now: float) -> float:
        """0: send up to ``max_size`` now; otherwise how long to hold them for more."""
        if pending <= 0:
            return 0.0
        if pending >= self.cap() or oldest_age_s >= self.max_delay_s:
            return 0.0
        remaining = self.max_delay_s - oldest_age_s
        if not self.adaptive:
            return remaining
        rate = self.rate(now)
        if rate * remaining < 1.0:
            return 0.0   # no other image is expected in time: waiting would only add latency
        return min(remaining, (self.cap() - pending) / rate)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._arrivals and self._arrivals[0][0] <= horizon:
            self._in_window -= self._arrivals.popleft()[1]
