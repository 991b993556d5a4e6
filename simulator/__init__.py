"""A local Microsoft identity platform + Microsoft Graph for rehearsing threadcast broadcasts.

It speaks the real wire protocols over HTTPS (OIDC discovery, the device code and refresh
token grants, the beta ``chatthreads`` and v1.0 channel ``messages`` endpoints), so the real
``msal`` library and a plain ``httpx`` client work against it unchanged. On demand it enforces
the documented Teams throttling limits and injects faults (docs/SIMULATOR.md). Run it with
``python -m simulator``; start it from Python (tests, demos) with
:func:`simulator.process.start`.

This package is a separate product: it never imports ``producer``, ``worker`` or ``threadcast``.
"""
