"""The logger every part of trio_search logs to: ``trio_search``.

A library configures no output (docs/logging.md): the program that embeds
it sets up handlers, and the commands call ``logging.basicConfig``. The
logger gets a ``NullHandler``, as the logging HOWTO asks of libraries
("Configuring Logging for a Library"): otherwise, in a program that
configures nothing, Python's last-resort handler would print every
WARNING line (a client's bad request, say) to stderr. A handler configured
anywhere (on the root logger, as ``basicConfig`` does, or on this one)
still gets every line.

Modules take the logger from here, not from ``logging.getLogger``, so that
the handler is in place before anything is logged; importing this module
costs no more than ``logging`` itself, which the package does not import
until a module that logs is loaded (``trio-search-index`` starts without it).
"""

from __future__ import annotations

import logging

#: The library's logger; its name is the one docs/logging.md gives.
logger = logging.getLogger("trio_search")
logger.addHandler(logging.NullHandler())
