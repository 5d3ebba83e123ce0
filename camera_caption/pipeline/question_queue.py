"""
Questions about the live view, waiting in order for the worker.

No ROS import.  The node ``put``s each question it receives; the caption
worker takes the oldest one between caption batches and answers it on the
newest frame of every camera.  The queue is bounded: a question that
arrives when it is full is refused (``put`` returns False) and counted, so
that the node can say so; the ones already waiting are kept.
"""

from collections import deque
from dataclasses import dataclass
import threading
import time


@dataclass(frozen=True)
class Question:
    """One question and when it arrived (monotonic seconds)."""

    text: str
    received: float
    number: int          # 1, 2, ... in order of arrival


def question_prompt(text):
    """
    Turn a question into a prompt in BLIP-2's question format.

    ``is the door open?`` -> ``Question: is the door open? Answer:``; a
    question already written as a prompt (ending in ``Answer:``) is kept.
    """
    text = text.strip()
    if text.endswith('Answer:'):
        return text
    return f'Question: {text} Answer:'


class QuestionQueue:
    """First in, first out, at most ``size`` waiting."""

    def __init__(self, size=10, clock=time.monotonic):
        if size < 1:
            raise ValueError(f'question queue size must be >= 1, got {size}')
        self.size = int(size)
        self._clock = clock
        self._items = deque()
        self._lock = threading.Lock()
        self.asked = 0        # questions put (accepted or not)
        self.dropped = 0      # refused because the queue was full

    def put(self, text):
        """Queue ``text``; return the :class:`Question`, or None when full."""
        with self._lock:
            self.asked += 1
            if len(self._items) >= self.size:
                self.dropped += 1
                return None
            question = Question(text, self._clock(), self.asked)
            self._items.append(question)
            return question

    def peek(self):
        """Return the oldest waiting question (kept), or None."""
        with self._lock:
            return self._items[0] if self._items else None

    def take(self):
        """Remove and return the oldest waiting question, or None."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self):
        """Questions waiting."""
        with self._lock:
            return len(self._items)
