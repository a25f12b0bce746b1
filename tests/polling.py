"""Waiting for a condition in tests that drive real hosts, with a deadline instead of a fixed sleep."""

import time


def wait_until(predicate, timeout, step=1.0):
    """True as soon as predicate() is; after timeout seconds, whatever a last call returns."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
