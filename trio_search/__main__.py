"""``python -m trio_search``: the server, as ``trio-search-server`` runs it."""

from __future__ import annotations

import sys

from ._server_cli import main

if __name__ == "__main__":
    sys.exit(main())
