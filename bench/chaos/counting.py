"""From what a scenario recorded to its row of the table: pure arithmetic, no I/O.

Every message text starts with its tag, ``sender#sequence``, unique in the run, so a
message is followed by its tag whatever id the server gave it (or gave it twice).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def tag_text(tag: str) -> str:
    """The text a tagged message carries."""
    return f"{tag} chaos"


def tag_of(text: str) -> str | None:
    """The tag a message text starts with; None for a text that carries none."""
    first = text.split(" ", 1)[0]
    return first if "#" in first else None


@dataclass
class Send:
    """One message a sender meant to post once (retries included), and its fate."""

    tag: str
    sender: str
    via: str  # "socket" or "http"
    server: str
    first_at: float
    attempts: int = 0
    acked_at: float | None = None  # a 201, or the sender saw its own message (or ack)
    ack_id: int | None = None
    outcomes: list[str] = field(default_factory=list)  # "201", "HTTP 503", "ReadTimeout"…

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None


@dataclass(frozen=True)
class Delivery:
    """A message event as a watcher received it (live, or in a history frame)."""

    id: int
    text: str
    at: float


@dataclass
class WatcherLog:
    name: str
    server: str
    deliveries: list[Delivery] = field(default_factory=list)
    #: The member list the watcher holds (its last presence frame, joins and leaves since).
    members: frozenset[str] = frozenset()

    def first_seen(self) -> dict[str, float]:
        """Each tag's first arrival at this watcher."""
        seen: dict[str, float] = {}
        for delivery in self.deliveries:
            tag = tag_of(delivery.text)
            if tag is not None and tag not in seen:
                seen[tag] = delivery.at
        return seen


@dataclass(frozen=True)
class ProbeRound:
    """One probe message posted on every server at ``posted_at``."""

    posted_at: float
    tags: tuple[str, ...]


@dataclass
class Recorded:
    """Everything a scenario run left behind, as the counting needs it."""

    scenario: str
    sends: Sequence[Send]
    watchers: Sequence[WatcherLog]
    #: (id, text) of every row of the scenario's room in the database.
    stored: Sequence[tuple[int, str]]
    fault_end: float
    probes: Sequence[ProbeRound] = ()
    #: Each server's ``GET /members`` at the end (None: it did not answer).
    members_http: Mapping[str, Sequence[str] | None] = field(default_factory=dict)
    #: Error frames each socket sender got (a socket's refusals name no message).
    refused_frames: Mapping[str, int] = field(default_factory=dict)


#: What an HTTP attempt ending so says of the message: nothing reached the server.
NOT_REACHED = frozenset({"ConnectError", "ConnectTimeout"})


def _unknown(outcome: str) -> bool:
    """An HTTP attempt's outcome that leaves the sender not knowing: neither an answer
    (a status) nor a failure to reach the server."""
    return outcome != "201" and not outcome.startswith("HTTP ") and outcome not in NOT_REACHED


def unanswered(sends: Iterable[Send], refused_frames: Mapping[str, int]) -> int:
    """Sends whose sender was never told what became of them: a socket message with no
    echo and no error frame, an HTTP attempt that timed out or lost its connection."""
    socket_sent: Counter[str] = Counter()
    socket_acked: Counter[str] = Counter()
    unknown = 0
    for send in sends:
        if send.via == "socket":
            socket_sent[send.sender] += 1
            socket_acked[send.sender] += send.acknowledged
        else:
            unknown += sum(1 for outcome in send.outcomes if _unknown(outcome))
    for sender, sent in socket_sent.items():
        unknown += max(0, sent - socket_acked[sender] - refused_frames.get(sender, 0))
    return unknown


def round_completed_at(probe: ProbeRound, watchers: Iterable[WatcherLog]) -> float | None:
    """When the last of the round's probes reached the last watcher; None if one never did."""
    latest = probe.posted_at
    for watcher in watchers:
        seen = watcher.first_seen()
        for tag in probe.tags:
            if tag not in seen:
                return None
            latest = max(latest, seen[tag])
    return latest


def recovery_seconds(
    probes: Iterable[ProbeRound], watchers: Sequence[WatcherLog], fault_end: float
) -> float | None:
    """From the fault's end until a round posted after it had reached every watcher."""
    done = [
        at
        for probe in probes
        if probe.posted_at >= fault_end and (at := round_completed_at(probe, watchers)) is not None
    ]
    return max(0.0, min(done) - fault_end) if done else None


def presence_right(
    watchers: Iterable[WatcherLog], members_http: Mapping[str, Sequence[str] | None]
) -> bool | None:
    """Every server's ``/members`` agree, and every watcher's list equals them."""
    answers = list(members_http.values())
    if not answers:
        return None
    if any(answer is None for answer in answers):
        return False
    truth = {frozenset(answer or ()) for answer in answers}
    if len(truth) != 1:
        return False
    (members,) = truth
    return all(watcher.members == members for watcher in watchers)


def out_of_order(watcher: WatcherLog) -> int:
    """Message events whose id is not above every id the watcher had before (repeats too)."""
    count, highest = 0, None
    for delivery in watcher.deliveries:
        if highest is not None and delivery.id <= highest:
            count += 1
        highest = delivery.id if highest is None else max(highest, delivery.id)
    return count


def duplicated_tags(stored: Iterable[tuple[int, str]], watchers: Iterable[WatcherLog]) -> set[str]:
    """Tags stored (or delivered) under more than one id: one message, stored twice."""
    ids: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for message_id, text in stored:
        if (tag := tag_of(text)) is not None:
            ids["db", tag].add(message_id)
    for watcher in watchers:
        for delivery in watcher.deliveries:
            if (tag := tag_of(delivery.text)) is not None:
                ids[watcher.name, tag].add(delivery.id)
    return {tag for (_, tag), found in ids.items() if len(found) > 1}


def percentile(values: Sequence[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def count(recorded: Recorded) -> dict[str, Any]:
    """The scenario's row: sent, acknowledged, delivered, lost, duplicated, out of order,
    recovery time, presence; and the tags behind the bad figures, for the JSON."""
    sent = {send.tag: send for send in recorded.sends}
    acked = {tag for tag, send in sent.items() if send.acknowledged}
    in_db = {tag for _, text in recorded.stored if (tag := tag_of(text)) is not None}
    per_watcher = {w.name: set(w.first_seen()) & set(sent) for w in recorded.watchers}
    lost = {
        tag
        for tag in acked
        if tag not in in_db or any(tag not in seen for seen in per_watcher.values())
    }
    duplicated = duplicated_tags(recorded.stored, recorded.watchers) & set(sent)
    by_server = [
        (send.server, send.acked_at - send.first_at)
        for send in sent.values()
        if send.acked_at is not None
    ]
    latencies = [late for _, late in by_server]
    return {
        "scenario": recorded.scenario,
        "sent": len(sent),
        "acknowledged": len(acked),
        "delivered_min": min((len(s) for s in per_watcher.values()), default=0),
        "delivered_all": bool(per_watcher) and all(acked <= s for s in per_watcher.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "out_of_order": sum(out_of_order(w) for w in recorded.watchers),
        "stored_unacknowledged": len((in_db & set(sent)) - acked),
        "unanswered": unanswered(sent.values(), recorded.refused_frames),
        "recovery_s": recovery_seconds(recorded.probes, recorded.watchers, recorded.fault_end),
        "presence_right": presence_right(recorded.watchers, recorded.members_http),
        "ack_p50_s": percentile(latencies, 0.5),
        "ack_max_s": max(latencies, default=None),
        "ack_max_s_by_server": {
            server: max((late for at, late in by_server if at == server), default=None)
            for server in sorted({send.server for send in sent.values()})
        },
        "lost_tags": sorted(lost),
        "duplicated_tags": sorted(duplicated),
    }
