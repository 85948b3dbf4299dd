"""The errors orchestration raises; all have `allsuse.errors.AllsuseError` as their base."""

from __future__ import annotations

from collections.abc import Sequence

from allsuse.errors import AllsuseError


class OrchestrationError(AllsuseError):
    """Base of the errors raised by the registry, the lifecycle, the event bus and the scheduler."""


class IllegalTransitionError(OrchestrationError):
    """A lifecycle was asked to move along an edge its transition table does not have."""

    def __init__(self, name: str, source: str, target: str) -> None:
        super().__init__(f"{name}: illegal transition {source} -> {target}")
        self.name = name
        self.source = source
        self.target = target


class DependencyError(OrchestrationError, ValueError):
    """The registered components' dependencies cannot be put in a start order."""


class UnknownDependencyError(DependencyError):
    """A component depends on a name nothing registered."""

    def __init__(self, component: str, dependency: str) -> None:
        super().__init__(f"unknown dependency: {component!r} depends on {dependency!r}, which is not registered")
        self.component = component
        self.dependency = dependency


class DependencyCycleError(DependencyError):
    """Components depend on each other in a circle; `cycle` lists it, first name repeated at the end."""

    def __init__(self, cycle: Sequence[str]) -> None:
        super().__init__(f"dependency cycle: {' -> '.join(cycle)}")
        self.cycle = tuple(cycle)


class ComponentStartError(OrchestrationError):
    """A component's start() failed; the components started before it were stopped again."""

    def __init__(self, component: str, cause: BaseException) -> None:
        super().__init__(f"component {component!r} failed to start: {cause!r}")
        self.component = component
        self.cause = cause


class ComponentStopError(OrchestrationError):
    """One or more components' stop() failed; every other component was still stopped."""

    def __init__(self, failures: Sequence[tuple[str, BaseException]]) -> None:
        names = ", ".join(f"{name!r} ({cause!r})" for name, cause in failures)
        super().__init__(f"components failed to stop: {names}")
        self.failures = tuple(failures)


class BusClosedError(OrchestrationError):
    """An event was published to, or a subscription made on, a closed event bus."""


__all__ = [
    "BusClosedError",
    "ComponentStartError",
    "ComponentStopError",
    "DependencyCycleError",
    "DependencyError",
    "IllegalTransitionError",
    "OrchestrationError",
    "UnknownDependencyError",
]
