"""In-process CLI runs change process-wide state; give it back after each test."""

import logging
import signal

import pytest


@pytest.fixture(autouse=True)
def restore_process_state():
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    logger = logging.getLogger("z2h")
    level, own, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    logger.setLevel(level)
    logger.handlers[:] = own
    logger.propagate = propagate
