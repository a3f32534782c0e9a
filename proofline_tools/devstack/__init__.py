"""`make run`: the development supervisor.

It starts what the suite needs and is not already configured (an embedded PostgreSQL, an embedded
Valkey, chainsim), then every implemented service, waits for each to be healthy, prints where
everything listens, and on Ctrl-C / SIGTERM stops all of it in reverse order. It never stops a
server it did not start.
"""

from proofline_tools.devstack.cli import main

__all__ = ["main"]
