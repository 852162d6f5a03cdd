"""Deciding the rung: rules, learned routers, cascades."""

from smallfirst.routing.base import (
    RouteDecision,
    Router,
    is_router_name,
    register_router_kind,
    resolve_router,
)

__all__ = ["RouteDecision", "Router", "is_router_name", "register_router_kind", "resolve_router"]
