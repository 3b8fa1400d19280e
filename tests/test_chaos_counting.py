"""``make chaos``'s arithmetic: made-up records in, the table's row out (no servers)."""

from __future__ import annotations

import pytest
from bench.chaos.counting import (
    Delivery,
    ProbeRound,
    Recorded,
    Send,
    WatcherLog,
    count,
    tag_of,
    tag_text,
)

MEMBERS = frozenset({"w-a", "w-b", "s-a-ws"})


def send(
    tag: str,
    *,
    first_at: float,
    acked_at: float | None,
    via: str = "http",
    outcomes: tuple[str, ...] = (),
) -> Send:
    sender = tag.split("#")[0]
    record = Send(tag, sender, via, "a", first_at, attempts=1, acked_at=acked_at)
    record.outcomes = list(outcomes)
    return record


def watcher(name: str, *deliveries: tuple[int, str, float]) -> WatcherLog:
    log = WatcherLog(name, "a", members=MEMBERS)
    log.deliveries = [Delivery(i, tag_text(tag), at) for i, tag, at in deliveries]
    return log


def test_tags_are_read_back_from_the_texts_they_were_written_into() -> None:
    assert tag_of(tag_text("s-a-ws#12")) == "s-a-ws#12"
    assert tag_of("hello there") is None


def test_a_clean_run_counts_every_acknowledged_message_once_everywhere() -> None:
    sends = [
        send("s-a-http#1", first_at=1.0, acked_at=1.1),
        send("s-a-http#2", first_at=2.0, acked_at=2.3),
        send("s-a-ws#1", first_at=2.5, acked_at=None, via="socket"),  # refused: not stored
    ]
    deliveries = [(1, "s-a-http#1", 1.1), (2, "s-a-http#2", 2.3)]
    row = count(
        Recorded(
            "clean",
            sends,
            [watcher("w-a", *deliveries), watcher("w-b", *deliveries)],
            stored=[(1, tag_text("s-a-http#1")), (2, tag_text("s-a-http#2"))],
            fault_end=5.0,
            members_http={"a": sorted(MEMBERS), "b": sorted(MEMBERS)},
        )
    )
    assert row["sent"] == 3
    assert row["acknowledged"] == 2
    assert (row["delivered_min"], row["delivered_all"]) == (2, True)
    assert (row["lost"], row["duplicated"], row["out_of_order"]) == (0, 0, 0)
    assert row["stored_unacknowledged"] == 0
    assert row["unanswered"] == 1  # the socket message: no echo, no error frame
    assert row["presence_right"] is True
    assert row["recovery_s"] is None  # no probe was posted
    assert row["ack_p50_s"] == pytest.approx(0.3)
    assert row["ack_max_s"] == pytest.approx(0.3)


def test_losses_duplicates_reordering_and_late_stores_are_each_counted() -> None:
    sends = [
        send("s-b-http#1", first_at=1.0, acked_at=1.2, outcomes=("201",)),  # lost at w-b
        # timed out, retried: stored twice
        send("s-b-http#2", first_at=2.0, acked_at=9.0, outcomes=("ReadTimeout", "201")),
        # timed out (yet stored), then not reached, then refused
        send(
            "s-b-http#3",
            first_at=3.0,
            acked_at=None,
            outcomes=("ReadTimeout", "ConnectError", "HTTP 503"),
        ),
        send("s-b-ws#1", first_at=3.5, acked_at=3.6, via="socket"),  # acked, never stored
        send("s-b-ws#2", first_at=4.0, acked_at=None, via="socket"),  # one error frame came
        send("s-b-ws#3", first_at=4.5, acked_at=None, via="socket"),  # and nothing else
    ]
    w_a = watcher(
        "w-a",
        (1, "s-b-http#1", 1.2),
        (3, "s-b-http#2", 8.5),  # stored late, delivered before the retry's copy
        (2, "s-b-http#2", 9.0),  # an id below one already seen: out of order
        (4, "s-b-http#3", 9.5),
    )
    w_b = watcher("w-b", (2, "s-b-http#2", 9.0), (3, "s-b-http#2", 9.1), (4, "s-b-http#3", 9.5))
    stored = [
        (1, tag_text("s-b-http#1")),
        (2, tag_text("s-b-http#2")),
        (3, tag_text("s-b-http#2")),
        (4, tag_text("s-b-http#3")),
        (5, "a message without a tag"),
    ]
    recorded = Recorded("faulty", sends, [w_a, w_b], stored, 5.0, refused_frames={"s-b-ws": 1})
    row = count(recorded)
    assert row["sent"] == 6
    assert row["acknowledged"] == 3
    assert row["delivered_min"] == 2  # w-b: #2 and #3; w-a: #1, #2, #3
    assert row["delivered_all"] is False
    assert row["lost_tags"] == ["s-b-http#1", "s-b-ws#1"]
    assert row["lost"] == 2
    assert row["duplicated_tags"] == ["s-b-http#2"]
    assert row["out_of_order"] == 1
    assert row["stored_unacknowledged"] == 1
    assert row["unanswered"] == 3  # two timeouts, and one socket message with no reply
    assert row["presence_right"] is None  # nobody was asked
    assert row["ack_max_s"] == pytest.approx(7.0)
    assert row["ack_max_s_by_server"] == {"a": pytest.approx(7.0)}


def test_recovery_is_timed_to_the_first_round_that_reached_every_watcher() -> None:
    probes = [
        ProbeRound(4.0, ("probe-a#0", "probe-b#0")),  # before the fault ended: not counted
        ProbeRound(10.0, ("probe-a#1", "probe-b#1")),  # probe-b#1 never reached w-b
        ProbeRound(10.5, ("probe-a#2", "probe-b#2")),
    ]
    w_a = watcher(
        "w-a",
        (1, "probe-a#0", 4.1),
        (2, "probe-b#0", 4.1),
        (3, "probe-a#1", 10.1),
        (4, "probe-b#1", 10.2),
        (5, "probe-a#2", 10.6),
        (6, "probe-b#2", 12.0),
    )
    w_b = watcher(
        "w-b",
        (1, "probe-a#0", 4.1),
        (2, "probe-b#0", 4.2),
        (3, "probe-a#1", 10.1),
        (5, "probe-a#2", 11.5),
        (6, "probe-b#2", 11.0),
    )
    recorded = Recorded("probed", [], [w_a, w_b], [], fault_end=10.0, probes=probes)
    assert count(recorded)["recovery_s"] == pytest.approx(2.0)  # round 2, complete at 12.0
    recorded.probes = probes[:2]
    assert count(recorded)["recovery_s"] is None  # no round after the fault got everywhere


@pytest.mark.parametrize(
    ("answers", "right"),
    [
        ({"a": sorted(MEMBERS), "b": sorted(MEMBERS)}, True),
        ({"a": sorted(MEMBERS), "b": sorted(MEMBERS | {"c-b"})}, False),  # servers disagree
        ({"a": sorted(MEMBERS - {"s-a-ws"})}, False),  # the watchers still list a leaver
        ({"a": sorted(MEMBERS), "b": None}, False),  # a server did not answer
    ],
)
def test_presence_is_right_when_every_watcher_lists_what_every_server_answers(
    answers: dict[str, list[str] | None], right: bool
) -> None:
    recorded = Recorded(
        "presence", [], [watcher("w-a"), watcher("w-b")], [], 0.0, members_http=answers
    )
    assert count(recorded)["presence_right"] is right
