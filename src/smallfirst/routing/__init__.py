"""Deciding the rung: rules, learned routers, cascades."""

from smallfirst.routing.base import (
    RouteDecision,
    Router,
    is_router_name,
    register_router_kind,
    resolve_router,
)
from smallfirst.routing.cascade import Cascade, Cascades
from smallfirst.routing.fallback import FailoverCaller
from smallfirst.routing.hops import CascadeResult, Hop

__all__ = [
    "Cascade",
    "CascadeResult",
    "Cascades",
    "FailoverCaller",
    "Hop",
    "RouteDecision",
    "Router",
    "is_router_name",
    "register_router_kind",
    "resolve_router",
]
