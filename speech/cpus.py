"""How many CPUs this machine has: the default number of engine workers and of busy tasks.

In ``speech`` because it is the package everything else already imports
(``supervisor`` sizes its capacity with it, ``speech`` its worker processes).
"""

from __future__ import annotations

import os


def cpu_count() -> int:
    """The CPUs the operating system reports, at least 1."""
    return os.cpu_count() or 1
