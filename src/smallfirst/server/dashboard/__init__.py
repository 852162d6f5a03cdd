"""The `/dashboard` page: what runs where, what it cost and what it saved, live from the ledger.

`mount_gateway_dashboard(app, gateway)` adds the page and its JSON API to the gateway
(`mount_dashboard(app, engine, check_key)` to any Starlette app);
`data` holds the aggregations, usable without HTTP (e.g. by `smallfirst report`).
"""

from smallfirst.server.dashboard.routes import (
    dashboard_routes,
    mount_dashboard,
    mount_gateway_dashboard,
)

__all__ = ["dashboard_routes", "mount_dashboard", "mount_gateway_dashboard"]
