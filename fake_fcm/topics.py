"""Topic names, the condition language, and per-install subscriptions.

Conditions look like `'A' in topics && ('B' in topics || !('C' in topics))`. They are parsed once
into a predicate over an install's topic set. Fan-out of a condition with a negation considers
every install that holds at least one subscription: an install FCM knows no topics for is not a
topic-messaging target at all (an assumption; FCM documents no universe for `!`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

TOPIC_RE = re.compile(r"[a-zA-Z0-9\-_.~%]+")
MAX_CONDITION_TOPICS = 5
MAX_TOPICS_PER_INSTALL = 2000
_MAX_DEPTH = 32
_TOKEN_RE = re.compile(r"\s*(?:(&&)|(\|\|)|(!)|(\()|(\))|'([^']*)'|\"([^\"]*)\"|(in)\b|(topics)\b)")

Predicate = Callable[[frozenset[str] | set[str]], bool]


class ConditionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    topics: tuple[str, ...]       # every topic named, in order of appearance
    negated: bool                 # contains `!`: subscribers of the named topics are not enough
    test: Predicate


def valid_topic(name: str) -> bool:
    return TOPIC_RE.fullmatch(name) is not None


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise ConditionError(f"unexpected character at offset {pos}")
        pos = m.end()
        kinds = ("and", "or", "not", "(", ")", "topic", "topic", "in", "topics")
        for kind, val in zip(kinds, m.groups()):
            if val is not None:
                out.append((kind, val))
                break
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.toks, self.i = tokens, 0
        self.topics: list[str] = []
        self.negated = False
        self.depth = 0

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            raise ConditionError(f"expected {kind}")
        val = self.toks[self.i][1]
        self.i += 1
        return val

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.peek() == "or":
            self.i += 1
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda s, p=tuple(parts): any(f(s) for f in p))

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while self.peek() == "and":
            self.i += 1
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else (lambda s, p=tuple(parts): all(f(s) for f in p))

    def parse_unary(self) -> Predicate:
        self.depth += 1
        if self.depth > _MAX_DEPTH:     # nesting deeper than any 5-topic condition needs; no RecursionError
            raise ConditionError("condition nested too deeply")
        try:
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> Predicate:
        kind = self.peek()
        if kind == "not":
            self.i += 1
            self.negated = True
            inner = self.parse_unary()
            return lambda s: not inner(s)
        if kind == "(":
            self.i += 1
            inner = self.parse_or()
            self.take(")")
            return inner
        name = self.take("topic")
        self.take("in")
        self.take("topics")
        if not valid_topic(name):
            raise ConditionError(f"invalid topic name {name!r}")
        self.topics.append(name)
        return lambda s: name in s


def parse_condition(text: str) -> Condition:
    """Parse a condition or raise ConditionError (bad syntax, bad topic name, too many topics)."""
    p = _Parser(_lex(text))
    if not p.toks:
        raise ConditionError("empty condition")
    test = p.parse_or()
    if p.i != len(p.toks):
        raise ConditionError("trailing input")
    if len(p.topics) > MAX_CONDITION_TOPICS:
        raise ConditionError(f"more than {MAX_CONDITION_TOPICS} topics")
    return Condition(text, tuple(p.topics), p.negated, test)


class TopicRegistry:
    """Subscriptions both ways: topic → installs (fan-out) and install → topics (conditions, limits)."""

    def __init__(self) -> None:
        self.by_topic: dict[str, set[int]] = {}
        self.by_install: dict[int, set[str]] = {}
        self._observer: Callable[[str, str, int], None] | None = None

    def observe(self, observer: Callable[[str, str, int], None]) -> None:
        """Call `observer(op, topic, install)`, op "add" | "remove", after each subscribe (that holds)
        and unsubscribe made with notify=True: e.g. to replicate subscriptions to other processes."""
        self._observer = observer

    def reset(self) -> None:
        self.by_topic.clear()
        self.by_install.clear()

    def subscribe(self, topic: str, install: int, notify: bool = True) -> bool:
        """False when the install is already at the per-instance topic limit. notify=False: a change
        that came from the observer's side (a replica applying it), not told back."""
        mine = self.by_install.get(install)
        if mine is None:
            mine = self.by_install[install] = set()
        if topic not in mine:
            if len(mine) >= MAX_TOPICS_PER_INSTALL:
                return False
            mine.add(topic)
            self.by_topic.setdefault(topic, set()).add(install)
        if notify and self._observer is not None:
            self._observer("add", topic, install)
        return True

    def unsubscribe(self, topic: str, install: int, notify: bool = True) -> None:
        self._remove(topic, install)
        if notify and self._observer is not None:
            self._observer("remove", topic, install)

    def _remove(self, topic: str, install: int) -> None:
        mine = self.by_install.get(install)
        if mine is None or topic not in mine:
            return
        mine.discard(topic)
        if not mine:
            del self.by_install[install]
        subs = self.by_topic[topic]
        subs.discard(install)
        if not subs:
            del self.by_topic[topic]

    def topics_of(self, install: int) -> set[str]:
        return self.by_install.get(install, set())

    def subscribers(self, topic: str) -> set[int]:
        return self.by_topic.get(topic, set())

    def match(self, cond: Condition) -> list[int]:
        """Installs a condition reaches, in ascending install order (deterministic fan-out)."""
        if cond.negated:
            candidates: Iterable[int] = self.by_install.keys()
        else:
            cset: set[int] = set()
            for t in cond.topics:
                cset |= self.by_topic.get(t, set())
            candidates = cset
        empty: set[str] = set()
        return sorted(i for i in candidates if cond.test(self.by_install.get(i, empty)))
