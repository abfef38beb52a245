"""Backpressure policies: bounded memory, drops counted and attributed to the frame after the gap."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from lptem.service.mailbox import Mailbox, MailboxClosed, PendingCommand, Policy, QueuedFrame
from lptem.service.protocol import IngestFrame, Ping, Reset
from tests.conftest import wait_until

PIXELS = np.zeros((1, 1), dtype=np.uint8)


def item(n):
    return QueuedFrame(IngestFrame(n, 0, PIXELS), 0, 0, None, None)


def next_frame(box):
    item = box.get(0)
    assert isinstance(item, QueuedFrame)
    return item


def test_latest_keeps_the_newest_and_attributes_drops():
    box = Mailbox(Policy.LATEST, capacity=2)
    dropped = [d.frame.frame for n in range(6) for d in box.put_frame(item(n))]
    assert dropped == [0, 1, 2, 3]
    first = next_frame(box)
    second = next_frame(box)
    assert (first.frame.frame, first.dropped_before) == (4, 4)  # frames 0..3 were lost before frame 4
    assert (second.frame.frame, second.dropped_before) == (5, 0)
    assert box.get(0) is None
    assert box.depth == 0


def test_queue_is_lossless_and_blocks_the_producer_when_full():
    box = Mailbox(Policy.QUEUE, capacity=2)
    box.put_frame(item(0))
    box.put_frame(item(1))
    unblocked = threading.Event()

    def producer():
        box.put_frame(item(2))
        unblocked.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not unblocked.wait(0.2)  # full: the third frame waits
    assert next_frame(box).frame.frame == 0
    assert unblocked.wait(2)
    thread.join()
    assert [next_frame(box).frame.frame for _ in range(2)] == [1, 2]


def test_commands_are_served_before_frames():
    box = Mailbox(Policy.LATEST, capacity=2)
    box.put_frame(item(0))
    box.put_command(Reset())
    assert isinstance(box.get(0), PendingCommand)
    assert isinstance(box.get(0), QueuedFrame)


def waiting_on_a_condition(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside ``threading.Condition.wait`` right now."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name in ("wait", "wait_for") and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_close_releases_a_blocked_producer_and_returns_waiting_work():
    box = Mailbox(Policy.QUEUE, capacity=1)
    box.put_frame(item(0))
    errors = []

    def producer():
        try:
            box.put_frame(item(1))
        except MailboxClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=producer)
    thread.start()
    assert wait_until(lambda: waiting_on_a_condition(thread))  # blocked in put_frame: the queue is full
    frames, commands = box.close()
    thread.join(2)
    assert [f.frame.frame for f in frames] == [0]
    assert commands == []
    assert len(errors) == 1
    with pytest.raises(MailboxClosed):
        box.put_command(Ping())


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        Mailbox(Policy.LATEST, 0)
