"""The loop watch and the catch-up allowance on their own, on a clock the test moves
(test_ws_catchup.py runs them in a real server that is stopped and held back)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from roomchat.limits.catchup import (
    BACK_TO_BACK_SECONDS,
    CAP_SECONDS,
    EXPIRES_SECONDS,
    PAUSE_SECONDS,
    CatchUp,
    SocketReads,
)
from roomchat.limits.users import create_user_limits
from roomchat.ops.loopwatch import INTERVAL_SECONDS, NO_STALL, STALL_SECONDS, LoopWatch
from tests.conftest import make_settings
from tests.helpers import FakeClock

RATE = 10.0


def watched() -> tuple[FakeClock, LoopWatch, CatchUp]:
    clock = FakeClock()
    watch = LoopWatch(clock=clock)
    watch.tick()  # started now: its timer is due INTERVAL_SECONDS on
    return clock, watch, CatchUp(rate=RATE, watch=watch, clock=clock)


def taken(catch_up: CatchUp, key: str = "1") -> int:
    """Spend everything ``key`` is owed; how many messages that was."""
    count = 0
    while catch_up.take(key):
        count += 1
    return count


def run(clock: FakeClock, watch: LoopWatch, seconds: float) -> None:
    """The loop runs on time for ``seconds``: its timer fires when due."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now = min(end, clock.now + INTERVAL_SECONDS)
        watch.tick()


def read_frame(
    reads: SocketReads, clock: FakeClock, watch: LoopWatch, *, handling: float = 0.001
) -> None:
    """The reader takes a frame that was waiting, and handles it for ``handling`` s."""
    reads.waiting()
    reads.received()
    run(clock, watch, handling)


def stall(clock: FakeClock, watch: LoopWatch, seconds: float) -> None:
    """The loop runs nothing for ``seconds``, then its timer fires (late)."""
    clock.now += INTERVAL_SECONDS + seconds
    watch.tick()


async def test_a_frozen_loop_is_seen_at_once_even_before_the_watch_runs() -> None:
    watch = LoopWatch()
    watch.start()
    try:
        assert watch.last_stall() == NO_STALL
        time.sleep(INTERVAL_SECONDS + 0.3)  # noqa: ASYNC251 (the freeze under test)
        # What runs first after a freeze may be a socket's data, not the watch's timer.
        under_way = watch.last_stall()
        assert under_way.seconds >= 0.3 - STALL_SECONDS
        assert under_way.ended == pytest.approx(time.monotonic(), abs=0.05)
    finally:
        watch.stop()


def test_the_watch_counts_a_late_timer_and_not_the_loops_jitter() -> None:
    clock, watch, _ = watched()
    clock.now += INTERVAL_SECONDS + STALL_SECONDS / 2
    watch.tick()
    assert watch.last_stall() == NO_STALL
    clock.now += INTERVAL_SECONDS + 2.0
    watch.tick()
    seen = watch.last_stall()
    assert seen.ended == clock.now
    assert seen.seconds == pytest.approx(2.0)
    clock.now += INTERVAL_SECONDS
    watch.tick()  # on time: the last stall stays the one it was
    assert watch.last_stall() == seen


def test_a_frame_sent_during_a_stall_earns_the_stall_and_a_silent_client_nothing() -> None:
    clock, watch, catch_up = watched()
    kept_pace, silent = catch_up.socket("1"), catch_up.socket("2")
    kept_pace.waiting()
    silent.waiting()
    stall(clock, watch, 3.0)
    clock.now += 0.01
    kept_pace.received()  # read just after the stall: it was sent during it
    run(clock, watch, BACK_TO_BACK_SECONDS + 0.1)
    silent.received()  # read well after: sent once the server was reading again
    assert taken(catch_up, "1") == pytest.approx(3.0 * RATE, abs=1)
    assert taken(catch_up, "2") == 0


def test_a_stall_the_watch_has_not_seen_yet_is_earned_all_the_same() -> None:
    clock, watch, catch_up = watched()
    reads = catch_up.socket("1")
    reads.waiting()
    clock.now += INTERVAL_SECONDS + 2.0  # frozen; the frame is read before the watch's tick
    reads.received()
    watch.tick()
    read_frame(reads, clock, watch)
    assert taken(catch_up) == pytest.approx(2.0 * RATE, abs=1)


def test_a_reader_held_back_earns_and_a_steady_sender_does_not() -> None:
    clock, watch, catch_up = watched()
    steady = catch_up.socket("1")
    for _ in range(1000):  # a thousand frames, each handled in the usual way
        read_frame(steady, clock, watch, handling=PAUSE_SECONDS / 2)
    steady.waiting()
    assert taken(catch_up, "1") == 0

    held = catch_up.socket("2")
    read_frame(held, clock, watch, handling=1.5)  # waiting on posts in flight, say
    held.waiting()
    assert taken(catch_up, "2") == 15


def test_a_users_sockets_earn_the_same_stall_once() -> None:
    clock, watch, catch_up = watched()
    first, second, other_user = catch_up.socket("1"), catch_up.socket("1"), catch_up.socket("2")
    for reads in (first, second, other_user):
        reads.waiting()
    stall(clock, watch, 2.0)
    for reads in (first, second, other_user):
        reads.received()
    assert taken(catch_up, "1") == pytest.approx(2.0 * RATE, abs=1)
    assert taken(catch_up, "2") == pytest.approx(2.0 * RATE, abs=1)


def test_what_is_owed_is_capped_and_forgotten_when_not_spent_soon() -> None:
    clock, watch, catch_up = watched()
    reads = catch_up.socket("1")
    reads.waiting()
    stall(clock, watch, CAP_SECONDS * 3)
    reads.received()
    assert taken(catch_up) == CAP_SECONDS * RATE

    reads.waiting()
    stall(clock, watch, 1.0)
    reads.received()
    assert catch_up.take("1")
    run(clock, watch, EXPIRES_SECONDS + 0.1)  # the frames it was for are long read
    assert not catch_up.take("1")


def test_forgetting_users_keeps_the_ones_still_owed() -> None:
    clock = FakeClock()
    watch = LoopWatch(clock=clock)
    catch_up = CatchUp(rate=RATE, watch=watch, clock=clock, max_keys=2)
    catch_up.earn("old", clock.now, clock.now + 1)
    clock.now += EXPIRES_SECONDS + 2
    catch_up.earn("recent", clock.now - 1, clock.now)
    catch_up.earn("new", clock.now - 1, clock.now)  # full: "old" has expired and goes
    assert taken(catch_up, "recent") == taken(catch_up, "new") == RATE


async def test_user_limits_watch_the_running_loop(tmp_path: Path) -> None:
    limits = create_user_limits(make_settings(tmp_path, messages_per_second=RATE))
    reads = limits.catch_up.socket("1")
    reads.waiting()
    time.sleep(INTERVAL_SECONDS + 0.3)  # noqa: ASYNC251 (the freeze under test)
    reads.received()
    assert limits.catch_up.take("1")
    await limits.close()
