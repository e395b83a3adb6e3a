"""Process exit that survives the Temporal SDK's native threads.

The SDK's Rust core threads can abort the interpreter during teardown (sdk-python issue 300:
exit code 134/139 after all work is done). Short-lived entry points flush and ``os._exit``
with their real status instead of running interpreter teardown.
"""

from __future__ import annotations

import os
import sys


def exit_now(status: int) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
