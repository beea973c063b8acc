"""``python -m relaydance_async.testing``: run the emulator standalone."""

from __future__ import annotations

import sys

from ._standalone import main

if __name__ == "__main__":
    sys.exit(main())
