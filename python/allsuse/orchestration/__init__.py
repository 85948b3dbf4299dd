"""Orchestration: the pieces that start, watch and drive the service.

- `Registry`: components with dependencies, started in topological order and stopped in reverse.
- `Lifecycle`, `State`: the explicit state machine behind every component and the service; `serving(state)`
  is what gRPC health reports.
- `EventBus`: in-process publish/subscribe with a bounded, drop-oldest queue per subscriber.
- `NyseCalendar` (`NYSE`): holidays, early closes and session hours in US/Eastern.
- `Scheduler` with the windows `MarketHours`, `Every` and `DailyAt`, on a `SystemClock` or a `ManualClock`.
"""

from __future__ import annotations

from allsuse.orchestration.bus import Event, EventBus, Handler, Subscription
from allsuse.orchestration.clock import Clock, ManualClock, SystemClock
from allsuse.orchestration.errors import (
    BusClosedError,
    ComponentStartError,
    ComponentStopError,
    DependencyCycleError,
    DependencyError,
    IllegalTransitionError,
    OrchestrationError,
    UnknownDependencyError,
)
from allsuse.orchestration.lifecycle import TRANSITIONS, Lifecycle, Listener, State, Transition, aggregate, serving
from allsuse.orchestration.nyse import EASTERN, NYSE, NyseCalendar, Session, easter
from allsuse.orchestration.registry import Component, Registry, dependency_order, start_waves
from allsuse.orchestration.schedule import Action, DailyAt, Every, Job, MarketHours, Scheduler, Window

__all__ = [
    "EASTERN",
    "NYSE",
    "TRANSITIONS",
    "Action",
    "BusClosedError",
    "Clock",
    "Component",
    "ComponentStartError",
    "ComponentStopError",
    "DailyAt",
    "DependencyCycleError",
    "DependencyError",
    "Event",
    "EventBus",
    "Every",
    "Handler",
    "IllegalTransitionError",
    "Job",
    "Lifecycle",
    "Listener",
    "ManualClock",
    "MarketHours",
    "NyseCalendar",
    "OrchestrationError",
    "Registry",
    "Scheduler",
    "Session",
    "State",
    "Subscription",
    "SystemClock",
    "Transition",
    "UnknownDependencyError",
    "Window",
    "aggregate",
    "dependency_order",
    "easter",
    "serving",
    "start_waves",
]
