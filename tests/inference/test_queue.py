"""The dispatcher's rules without an actor system: batching (size, delay, adaptive), the durable
queue, dedup by hash, shedding, a worker lost mid-batch, the quarantine, recovery after a restart.
Time is passed in (the actor passes its clock), so nothing here sleeps."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.inference.batching import BatchPolicy
from actors.inference.store import QUEUE_GROUP, QUEUE_TOPIC, JobStore, result_row
from actors.inference.work import WorkQueue
from actors.storage import SqliteLog
from protocols.edges import Refusal
from protocols.inference import JobAccepted, Submission

VERSION = "test-model/1"


def submission(n: int) -> Submission:
    digest = f"{n:064x}"
    return Submission(link=f"blob:sha256:{digest}", image_hash=digest, size=10,
                      media_type="image/png")


@pytest.fixture
def parts(tmp_path: Path):
    log = SqliteLog(f"sqlite:///{tmp_path / 'queue.db'}")
    store = JobStore(f"sqlite:///{tmp_path / 'results.db'}")
    yield log, store, tmp_path
    log.close()
    store.close()


def make_queue(log, store, *, max_size=4, max_delay_s=0.05, adaptive=False, bound=100):
    return WorkQueue(log, store, VERSION, BatchPolicy(max_size, max_delay_s, adaptive=adaptive),
                     bound)


def commit(store: JobStore, hashes: list[str], pid: int = 1) -> int:
    return store.commit_results([result_row(h, VERSION, [], batch_size=len(hashes),
                                            worker_pid=pid) for h in hashes])


# --- batching rules ---------------------------------------------------------------------------

def test_a_full_batch_leaves_at_once_and_a_partial_one_waits_at_most_the_delay() -> None:
    policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=False)
    assert policy.wait_s(8, 0.0, now=0.0) == 0.0
    assert policy.wait_s(3, 0.01, now=0.0) == pytest.approx(0.04)
    assert policy.wait_s(3, 0.05, now=0.0) == 0.0
    assert policy.wait_s(0, 1.0, now=0.0) == 0.0


def test_adaptive_batching_sends_a_lone_image_at_once_under_light_load() -> None:
    policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=True)
    policy.arrived(1, now=10.0)                       # 1 image/s: none expected within 50 ms
    assert policy.wait_s(1, 0.0, now=10.0) == 0.0


def test_adaptive_batching_waits_just_long_enough_to_fill_under_heavy_load() -> None:
    policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=True)
    for k in range(200):                              # 200 images/s over the last second
        policy.arrived(1, now=10.0 + k * 0.005)
    now = 10.0 + 199 * 0.005
    assert policy.rate(now) == pytest.approx(200, rel=0.01)
    assert policy.wait_s(4, 0.0, now=now) == pytest.approx(4 / 200, rel=0.02)   # 4 more to come
    assert policy.wait_s(4, 0.04, now=now) == pytest.approx(0.01, rel=0.02)     # delay caps it
    assert policy.rate(now + 2.0) == 0.0              # the window slides


def test_the_queue_batches_by_size_and_by_delay(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, max_size=4, max_delay_s=0.05)
    queue.worker_ready("w1", 101, now=0.0)
    queue.worker_ready("w2", 102, now=0.0)
    queue.submit([submission(n) for n in range(6)], now=0.0)
    sends, wait = queue.pump(now=0.0)
    assert [len(b.items) for _, b in sends] == [4]    # a full batch at once; 2 held for more
    assert wait == pytest.approx(0.05)
    sends, wait = queue.pump(now=0.05)                # the delay ran out: the rest leave
    assert [len(b.items) for _, b in sends] == [2] and wait is None
    assert queue.batch_sizes == {4: 1, 2: 1} and queue.in_flight == 6 and queue.depth == 0


# --- durable queue, dedup, shedding -------------------------------------------------------------

def test_a_job_is_acknowledged_only_once_it_is_in_the_log(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store)
    answers = queue.submit([submission(1), submission(2)], now=0.0)
    assert all(isinstance(a, JobAccepted) and a.state == "queued" for a in answers)
    entries = log.read(QUEUE_TOPIC, 1, 10)
    assert [json.loads(e.payload)["job_id"] for e in entries] == [a.job_id for a in answers]
    assert store.job(answers[0].job_id).state == "queued"


def test_identical_images_share_one_inference_and_a_stored_result_answers_at_once(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, max_size=8, max_delay_s=0.0)
    queue.worker_ready("w1", 101, now=0.0)
    first, again = queue.submit([submission(7), submission(7)], now=0.0)
    sends, _ = queue.pump(now=0.0)
    assert [item.image_hash for item in sends[0][1].items] == [submission(7).image_hash]
    commit(store, [submission(7).image_hash])
    queue.finished(101, sends[0][1].batch_id, [submission(7).image_hash], {}, 0, now=0.1)
    assert store.job(first.job_id).state == store.job(again.job_id).state == "done"
    (later,) = queue.submit([submission(7)], now=0.2)
    assert later.cached and later.state == "done" and queue.depth == 0
    assert log.end_offset(QUEUE_TOPIC) == 2           # the cached job never entered the queue
    assert queue.stats["deduplicated"] == 2
    assert log.committed(QUEUE_GROUP, QUEUE_TOPIC) == 2


def test_past_the_queue_bound_new_images_are_shed_with_a_retry_after(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, bound=2)
    answers = queue.submit([submission(n) for n in range(3)], now=0.0)
    assert [type(a) for a in answers] == [JobAccepted, JobAccepted, Refusal]
    refusal = answers[2]
    assert refusal.reason == "unavailable" and refusal.retry_after_s and refusal.retry_after_s >= 1
    (joined,) = queue.submit([submission(1)], now=0.0)     # joining queued work costs no room
    assert isinstance(joined, JobAccepted)
    assert queue.stats["shed"] == 1 and log.end_offset(QUEUE_TOPIC) == 3


# --- crashes and quarantine ---------------------------------------------------------------------

def test_a_worker_lost_mid_batch_returns_only_its_unfinished_images(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, max_size=3, max_delay_s=0.0)
    queue.worker_ready("w1", 101, now=0.0)
    queue.worker_ready("w2", 102, now=0.0)
    queue.submit([submission(n) for n in range(6)], now=0.0)
    sends, _ = queue.pump(now=0.0)
    (pid_a, batch_a), (pid_b, batch_b) = sends
    hashes_a = [i.image_hash for i in batch_a.items]
    commit(store, hashes_a[:1], pid_a)                # one result was stored before the kill
    queue.lost(pid_a, "killed", now=0.1)
    assert queue.stats["requeued"] == 2 and queue.depth == 2
    assert [w.image_hash for w in queue.pending] == hashes_a[1:]
    assert all(w.crashes == 1 for w in queue.pending)
    assert len(queue.workers[pid_b].works) == 3       # the other batch is untouched


def test_suspects_run_alone_and_an_input_that_crashes_twice_is_quarantined(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, max_size=4, max_delay_s=0.0)
    queue.worker_ready("w1", 101, now=0.0)
    answers = queue.submit([submission(n) for n in range(3)], now=0.0)
    (_, batch), = queue.pump(now=0.0)[0]
    queue.lost(101, "MemoryError: bomb", now=0.1)     # all three are suspects now
    queue.worker_ready("w1", 201, now=0.2)
    (_, solo), = queue.pump(now=0.2)[0]
    assert len(solo.items) == 1 and solo.items[0].solo
    queue.lost(201, "MemoryError: bomb again", now=0.3)   # the first one crashed again
    assert queue.stats["quarantined"] == 1
    view = store.job(answers[0].job_id)
    assert view.state == "quarantined" and "bomb again" in view.error
    queue.worker_ready("w1", 301, now=0.4)
    (_, next_solo), = queue.pump(now=0.4)[0]           # the innocent ones are tried alone
    assert len(next_solo.items) == 1
    assert next_solo.items[0].image_hash == submission(1).image_hash


def test_a_restarted_dispatcher_replays_exactly_the_open_jobs(parts) -> None:
    log, store, _ = parts
    queue = make_queue(log, store, max_size=2, max_delay_s=0.0)
    queue.worker_ready("w1", 101, now=0.0)
    queue.submit([submission(n) for n in range(4)], now=0.0)
    (_, batch), = queue.pump(now=0.0)[0]
    done = [i.image_hash for i in batch.items]
    commit(store, done)
    queue.finished(101, batch.batch_id, done, {}, 0, now=0.1)
    assert log.committed(QUEUE_GROUP, QUEUE_TOPIC) == 2
    fresh = make_queue(log, store, max_size=2, max_delay_s=0.0)
    assert fresh.recover(now=1.0) == 2
    assert [w.image_hash for w in fresh.pending] == [submission(2).image_hash,
                                                     submission(3).image_hash]


def test_a_result_is_stored_once_however_often_it_is_computed(parts) -> None:
    _, store, _ = parts
    digest = submission(9).image_hash
    assert commit(store, [digest], pid=1) == 1
    assert commit(store, [digest], pid=2) == 0
    assert store.counts()["results"] == 1


def test_the_cost_line_keeps_full_batches_when_a_batch_shares_a_fixed_cost() -> None:
    policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=True)
    for size in (1, 8, 4, 2, 8, 1):
        policy.observed(size, 0.010 + 0.005 * size)       # 10 ms a batch + 5 ms an image
    fixed, per_image = policy.cost_line()
    assert fixed == pytest.approx(0.010) and per_image == pytest.approx(0.005)
    policy.sent(8)
    assert policy.cap() == 8


def test_noisy_batch_times_keep_full_batches_unless_batching_costs_more_beyond_doubt() -> None:
    """Images differ and the cores are shared: batch times scatter around their line. A fit whose
    fixed cost comes out a little below zero by chance keeps full batches; one that is below zero
    by more than twice its standard error lowers the cap."""
    def policy_after(seed: int, cost: Callable[[int], float]) -> BatchPolicy:
        rng = random.Random(seed)
        policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=True)
        for _ in range(100):
            size = rng.choice((8, 8, 8, 8, 8, 7, 6, 3, 1))
            policy.observed(size, max(0.001, cost(size) + rng.gauss(0, 0.04) * size ** 0.5))
        policy.sent(1)
        return policy

    shared = policy_after(24, lambda n: 0.026 + 0.044 * n)   # 26 ms a batch, 44 ms an image
    line = shared.cost_line()
    assert line is not None and line[0] < 0, "this sample's fit puts the fixed cost below zero"
    assert shared.cap() == 8
    worse = policy_after(24, lambda n: 0.044 * n * (1 + 0.06 * (n - 1)))  # slower per image
    assert worse.cap() == 1


def test_the_cost_line_lowers_the_cap_to_1_when_batching_costs_more_per_image() -> None:
    policy = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=True, explore_every=20)
    assert policy.cap() == 8                  # nothing learnt yet: full batches
    for size in (1, 8, 1, 8):
        policy.observed(size, 0.020 * size * (1 + 0.06 * (size - 1)))   # slower per image
    assert policy.cost_line()[0] < 0
    assert policy.cap() == 2                  # batch 0: two, to keep measuring
    caps = []
    for _ in range(20):
        policy.sent(1)
        caps.append(policy.cap())
    assert caps.count(2) == 1 and caps.count(1) == 19
    relearned = BatchPolicy(max_size=8, max_delay_s=0.0, adaptive=True)
    relearned.learned_from(policy)
    relearned.sent(1)
    assert relearned.cap() == 1               # new rules keep what the timings said
    assert policy.wait_s(1, 0.0, now=0.0) == 0.0   # nothing is held for a batch that would not pay
    fixed = BatchPolicy(max_size=8, max_delay_s=0.05, adaptive=False)
    fixed.observed(1, 0.02)
    fixed.observed(8, 0.5)
    assert fixed.cap() == 8                   # not adaptive: the configured size, always
