"""A method for the eval-cache tests, alone in its module: its code hash covers this file only."""

CALLS: list[str] = []


class Recording:
    """Returns the original frames and records every call (a method whose runs we can count)."""

    def __init__(self):
        self.name = "recording"

    def settings(self):
        return {"source": "test method"}

    def __call__(self, frames, anchor, reference, progress=None):
        CALLS.append("call")
        return frames.copy()
