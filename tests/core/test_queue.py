"""BoundedPriorityQueue: stateful property tests against a plain reference model, plus examples."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from llama_orch.core import BoundedPriorityQueue, Full, Pushed, QueuePolicy
from llama_orch_api import Priority

INT, BAT = Priority.interactive, Priority.batch


class QueueModel:
    """The specification, written the obvious way: two FIFO lists."""

    def __init__(self, capacity: int, policy: QueuePolicy) -> None:
        self.capacity = capacity
        self.policy = policy
        self.lanes: dict[Priority, list[tuple[str, object]]] = {INT: [], BAT: []}

    def __len__(self) -> int:
        return len(self.lanes[INT]) + len(self.lanes[BAT])

    def order(self) -> list[tuple[str, object]]:
        return self.lanes[INT] + self.lanes[BAT]

    def keys(self) -> list[str]:
        return [k for k, _ in self.order()]

    def ahead_of_new(self, priority: Priority) -> list[object]:
        """Items a new entry of ``priority`` would queue behind, in dispatch order."""
        lanes = [INT] if priority is INT else [INT, BAT]
        return [item for lane in lanes for _, item in self.lanes[lane]]

    def push(self, key: str, item: object, priority: Priority) -> Pushed[object]:
        evicted = None
        if len(self) >= self.capacity:
            if self.policy is QueuePolicy.reject:
                raise Full
            # drop-lru: the oldest entry of the lowest class that is not above the incoming one.
            candidates = [BAT] if priority is BAT else [BAT, INT]
            lane = next((c for c in candidates if self.lanes[c]), None)
            if lane is None:
                raise Full
            evicted = self.lanes[lane].pop(0)
        position = len(self.ahead_of_new(priority))
        self.lanes[priority].append((key, item))
        return Pushed(position, evicted)

    def pop(self) -> tuple[str, object] | None:
        for lane in (INT, BAT):
            if self.lanes[lane]:
                return self.lanes[lane].pop(0)
        return None

    def remove(self, key: str) -> object | None:
        for lane in (INT, BAT):
            for index, (k, item) in enumerate(self.lanes[lane]):
                if k == key:
                    del self.lanes[lane][index]
                    return item
        return None


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = itertools.count()
        self.gone: set[str] = set()  # popped, removed or evicted: must never come out of pop again
        self.priority_of: dict[str, Priority] = {}

    @initialize(capacity=st.integers(1, 6), policy=st.sampled_from(list(QueuePolicy)))
    def setup(self, capacity: int, policy: QueuePolicy) -> None:
        self.queue: BoundedPriorityQueue[object] = BoundedPriorityQueue(capacity, policy)
        self.model = QueueModel(capacity, policy)

    def _snapshot(self) -> list[tuple[str, object]]:
        return list(self.queue)

    @rule(priority=st.sampled_from([INT, BAT]))
    def push(self, priority: Priority) -> None:
        key = f"k{next(self.counter)}"
        item = ("item", key)
        before = self._snapshot()
        try:
            expected = self.model.push(key, item, priority)
        except Full:
            with pytest.raises(Full):
                self.queue.push(key, item, priority)
            assert self._snapshot() == before, "a refused push must change nothing"
            return
        got = self.queue.push(key, item, priority)
        assert got == expected
        self.priority_of[key] = priority
        if got.evicted is not None:
            evicted_key = got.evicted[0]
            # Never evict an entry of a class above the incoming one.
            assert not (priority is BAT and self.priority_of[evicted_key] is INT)
            self.gone.add(evicted_key)

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def push_duplicate(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.model.keys()))
        before = self._snapshot()
        with pytest.raises(KeyError):
            self.queue.push(key, ("dup", key), data.draw(st.sampled_from([INT, BAT])))
        assert self._snapshot() == before

    @rule()
    def pop(self) -> None:
        expected = self.model.pop()
        got = self.queue.pop()
        assert got == expected
        if got is not None:
            assert got[0] not in self.gone
            self.gone.add(got[0])

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def remove_queued(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.model.keys()))
        expected_rest = [entry for entry in self.model.order() if entry[0] != key]
        expected = self.model.remove(key)
        assert self.queue.remove(key) == expected == ("item", key)
        assert key not in self.queue
        assert self._snapshot() == expected_rest, "remove must take exactly that entry"
        self.gone.add(key)

    @precondition(lambda self: len(self.gone) > 0)
    @rule(data=st.data())
    def remove_gone(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.gone)))
        before = self._snapshot()
        assert self.queue.remove(key) is None
        assert self._snapshot() == before

    @invariant()
    def bounded(self) -> None:
        assert len(self.queue) <= self.queue.capacity

    @invariant()
    def agrees_with_model(self) -> None:
        order = self.model.order()
        assert self._snapshot() == order
        assert len(self.queue) == len(order)
        assert self.queue.peek() == (order[0] if order else None)
        assert self.queue.depth(INT) == len(self.model.lanes[INT])
        assert self.queue.depth(BAT) == len(self.model.lanes[BAT])
        for index, (key, _) in enumerate(order):
            assert key in self.queue
            assert self.queue.position(key) == index
        for key in self.gone:
            assert key not in self.queue
            assert self.queue.position(key) is None

    @invariant()
    def interactive_before_batch(self) -> None:
        classes = [self.priority_of[key] for key, _ in self._snapshot()]
        assert classes == sorted(classes, key=lambda p: p is BAT)

    @invariant()
    def ahead_and_head(self) -> None:
        for priority in (INT, BAT):
            ahead = self.model.ahead_of_new(priority)
            assert self.queue.ahead_of_new(priority) == len(ahead)
            for n in (0, 1, 2, len(ahead), len(ahead) + 1):
                assert list(self.queue.head(n, priority)) == ahead[:n]


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------------------------
# Order properties over plain operation sequences


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.one_of(st.sampled_from([INT, BAT]), st.just("pop")), max_size=60))
def test_pop_order_is_interactive_first_then_fifo(ops: list[Priority | str]) -> None:
    """With room for everything, pops come out interactive-first and FIFO within each class."""
    queue: BoundedPriorityQueue[int] = BoundedPriorityQueue(len(ops) + 1)
    queued: dict[Priority, list[int]] = {INT: [], BAT: []}
    popped: list[int] = []
    for n, op in enumerate(ops):
        if op == "pop":
            got = queue.pop()
            expected = next((lane.pop(0) for lane in (queued[INT], queued[BAT]) if lane), None)
            assert (got[1] if got else None) == expected
            if got:
                popped.append(got[1])
        else:
            assert isinstance(op, Priority)
            queue.push(f"k{n}", n, op)
            queued[op].append(n)
    rest = [item for _, item in iter(queue.pop, None)]
    assert rest == queued[INT] + queued[BAT]
    assert len(queue) == 0


# --------------------------------------------------------------------------------------------
# Examples


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        BoundedPriorityQueue(0)


def test_default_policy_is_reject() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(1)
    assert queue.policy is QueuePolicy.reject
    assert queue.push("a", "A", BAT) == Pushed(0)
    with pytest.raises(Full):
        queue.push("b", "BAT", INT)
    assert list(queue) == [("a", "A")]


def test_interactive_overtakes_batch_and_positions() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(10)
    assert queue.push("b1", "B1", BAT).position == 0
    assert queue.push("b2", "B2", BAT).position == 1
    assert queue.push("i1", "I1", INT).position == 0
    assert queue.push("i2", "I2", INT).position == 1
    assert [k for k, _ in queue] == ["i1", "i2", "b1", "b2"]
    assert queue.position("b1") == 2
    assert queue.ahead_of_new(INT) == 2
    assert queue.ahead_of_new(BAT) == 4
    assert list(queue.head(3, BAT)) == ["I1", "I2", "B1"]
    assert list(queue.head(3, INT)) == ["I1", "I2"]
    assert [queue.pop() for _ in range(5)] == [("i1", "I1"), ("i2", "I2"), ("b1", "B1"), ("b2", "B2"), None]


def test_drop_lru_batch_arrival_evicts_oldest_batch() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(3, QueuePolicy.drop_lru)
    queue.push("i1", "I1", INT)
    queue.push("b1", "B1", BAT)
    queue.push("b2", "B2", BAT)
    pushed = queue.push("b3", "B3", BAT)
    assert pushed == Pushed(position=2, evicted=("b1", "B1"))
    assert [k for k, _ in queue] == ["i1", "b2", "b3"]


def test_drop_lru_interactive_arrival_prefers_batch_then_oldest_interactive() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(2, QueuePolicy.drop_lru)
    queue.push("i1", "I1", INT)
    queue.push("b1", "B1", BAT)
    assert queue.push("i2", "I2", INT) == Pushed(position=1, evicted=("b1", "B1"))
    assert queue.push("i3", "I3", INT) == Pushed(position=1, evicted=("i1", "I1"))
    assert [k for k, _ in queue] == ["i2", "i3"]


def test_drop_lru_batch_arrival_never_evicts_interactive() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(2, QueuePolicy.drop_lru)
    queue.push("i1", "I1", INT)
    queue.push("i2", "I2", INT)
    with pytest.raises(Full):
        queue.push("b1", "B1", BAT)
    assert [k for k, _ in queue] == ["i1", "i2"]


def test_duplicate_key_is_refused_even_across_classes() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(4)
    queue.push("a", "A", INT)
    with pytest.raises(KeyError):
        queue.push("a", "A2", BAT)
    assert list(queue) == [("a", "A")]


def test_removed_entry_never_pops_and_key_can_be_reused() -> None:
    queue: BoundedPriorityQueue[str] = BoundedPriorityQueue(3)
    queue.push("a", "A", BAT)
    queue.push("b", "BAT", BAT)
    assert queue.remove("a") == "A"
    assert queue.remove("a") is None
    assert queue.position("a") is None
    assert queue.pop() == ("b", "BAT")
    assert queue.pop() is None
    queue.push("a", "A again", INT)
    assert queue.pop() == ("a", "A again")
