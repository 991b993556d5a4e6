"""A local Microsoft identity platform + Microsoft Graph for rehearsing threadcast broadcasts.

It speaks the real wire protocols over HTTPS (OIDC discovery, the device code and refresh
token grants, the beta ``chatthreads`` and v1.0 channel ``messages`` endpoints), so the real
``msal`` library and a plain ``httpx`` client work against it unchanged. On demand it enforces
the documented Teams throttling limits and injects faults (docs/SIMULATOR.md).

Its public surface is its command line and what this module exports, nothing else:

- ``python -m simulator --help`` (``threadcast sim``): run it in the foreground;
- :func:`start`: run that same command as a child process and return, once it listens, a
  :class:`RunningSimulator` (``graph_url``, ``authority_host``, ``admin_url``, ``ca_bundle``,
  ``ssl_context()``, ``stop()``; a context manager). Flags it has no keyword for go in
  ``extra_args``, exactly as on the command line (``("--chatthreads-removed",)``). It raises
  :class:`StartupError`, carrying the child's output, when the simulator does not come up.

    sim = simulator.start(state_dir, device_approve_delay=1.0)
    try:
        ...  # point THREADCAST_GRAPH_URL, _AUTHORITY_HOST, _CA_BUNDLE at it
    finally:
        sim.stop()

Once it runs, it is driven over HTTPS only: the Graph and identity endpoints, and the admin
API under ``admin_url`` (``/stats``, ``/config``, … in docs/SIMULATOR.md). The product
(``producer``: ``threadcast demo``) uses nothing else; its other modules are internal.

This package is a separate product: it never imports ``producer``, ``worker`` or ``threadcast``.
"""

from simulator.errors import StartupError
from simulator.process import RunningSimulator, start

__all__ = ["RunningSimulator", "StartupError", "start"]
