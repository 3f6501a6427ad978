"""Named points of a unit's finalisation where a test can stop the driver (a SIGKILL), to prove that
``--resume`` finishes a search killed there.

Nothing happens unless ECGTUNE_TEST_PAUSE_AT names the point: then the driver writes the point's name to
the file ECGTUNE_TEST_PAUSE_FILE and waits, so that the test kills it exactly there, not some
milliseconds before or after (a sleep-and-hope test would kill it wherever it happens to be). A resumed
search is started without the variable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AT, PAUSE_FILE = "ECGTUNE_TEST_PAUSE_AT", "ECGTUNE_TEST_PAUSE_FILE"
SELECTION, TEST_EVALUATION, PROMOTION = "selection", "test_evaluation", "promotion"


def reached(point: str) -> None:
    """Wait here for good (until killed) where ECGTUNE_TEST_PAUSE_AT names ``point``; else return at once."""
    if os.environ.get(PAUSE_AT) != point:
        return
    Path(os.environ[PAUSE_FILE]).write_text(point)
    while True:
        time.sleep(60)
