"""``python -m relaydance_async``: the ``relaydance`` command, for when scripts are not on PATH."""

from __future__ import annotations

from relaydance_async._cli import main

raise SystemExit(main())
