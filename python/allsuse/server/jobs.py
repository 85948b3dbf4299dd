"""The service's scheduled jobs, on the US/Eastern NYSE calendar (allsuse.orchestration):

- every minute during market hours: a session heartbeat (`allsuse_market_open`, and a "market.tick" event);
- every 5 minutes: refresh the gauges that are not updated per request (response-cache hit rate, group commit);
- every minute during market hours, on every portfolio loaded once with one market from the stored history:
  continuous compliance of the open book (allsuse.server.compliance), an alert for each new violation and a
  resolved one when it clears; then each account's and portfolio's equity marked and stored, the 17 metrics and
  ES (allsuse.server.performance);
- every 5 minutes during market hours, on books loaded once: factor crowding of every portfolio
  (allsuse.server.crowding), a HIGH alert when one enters HIGH naming the crowded cluster, an INFO alert when it
  leaves HIGH; then the stress scenarios into Prometheus (allsuse.server.stress_watch);
- every minute: the summary of an alert burst whose window has closed (allsuse.server.alerting);
- daily at 16:15 on trading days: the end-of-day (daily) report of every portfolio written as HTML and JSON under
  reports.dir (allsuse.reports) and raised as an info EOD_REPORT alert, which carries the day's ES (the store's
  ES history: the report's ES chart reads it back);
- Saturdays at 09:00: the weekly report of every portfolio (PROTOCOL section 11), written the same way;
- at 16:30 on the last trading day of each calendar quarter (after the session and the daily report): the
  quarterly report of every portfolio, written the same way;
- daily at 02:00: `audit verify --full` (a critical alert when anything is wrong, and then nothing else); on an intact
  store, equity marks past the retention pruned, ANALYZE/VACUUM (PostgreSQL: VACUUM (ANALYZE)) and, on SQLite, a
  backup.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from allsuse.orchestration.lifecycle import State
from allsuse.orchestration.nyse import NYSE
from allsuse.orchestration.schedule import DailyAt, Every, MarketHours, QuarterEndAt, Scheduler, WeeklyAt
from allsuse.server.alerting import alert_system

if TYPE_CHECKING:
    from allsuse.server.app import Service, ServiceDeps

log = logging.getLogger("allsuse.jobs")
BACKUPS_KEPT = 7
SATURDAY = 5


async def write_reports(deps: ServiceDeps, kind: str, slot: dt.datetime) -> int:
    """Builds and writes the `kind` report of every stored portfolio as of the slot (in UTC, as GetReport reads its
    Timestamp and the store keeps times: the alerts of the period are those raised before the slot) under
    reports.dir; a daily one is also raised as an EOD_REPORT info alert carrying the day's ES. A portfolio whose
    report fails is logged, the others are still written, and the run then fails naming it (the scheduler counts
    the failure). Returns how many were written."""
    from allsuse.reports import build_report, write_report
    from allsuse.reports.gather import EOD_CODE
    from allsuse.server.rpc import run_blocking

    root = Path(deps.config.reports.dir)
    portfolios = await run_blocking(deps.store.list_portfolios, limit=100_000)
    as_of = slot.astimezone(dt.UTC).replace(tzinfo=None)
    written = 0
    failed: list[str] = []
    for record in portfolios:
        try:
            report = await run_blocking(build_report, deps, record.id, kind, as_of)
            html_path, json_path = await run_blocking(write_report, root, report)
        except Exception:
            log.exception("%s report of %s failed", kind, record.id)
            failed.append(record.id)
            continue
        written += 1
        if kind == "daily":
            alert = {
                "severity": "INFO",
                "portfolio_id": record.id,
                "code": EOD_CODE,
                "message": report.text,
                "report_date": report.body["date"],
                "es": report.body["es"],
                "html": str(html_path),
                "json": str(json_path),
            }
            await alert_system(deps).raise_alert(alert)
    if failed:
        raise RuntimeError(f"{kind} reports failed for {', '.join(failed)} (the others were written)")
    return written


def maintain(deps: ServiceDeps, today: dt.date) -> tuple[int, str]:
    """The nightly upkeep of an intact store: equity marks older than monitoring.metrics_retention_days pruned,
    then the planner's statistics refreshed and free space reclaimed (Store.optimize). Returns (rows pruned, what
    ran); a busy database is logged and left for the next night."""
    from allsuse.store import equity
    from allsuse.store.errors import StoreError

    cut = (today - dt.timedelta(days=deps.config.monitoring.metrics_retention_days) - dt.date(1970, 1, 1)).days
    pruned = deps.store.write(lambda tx: equity.prune(tx, cut))
    try:
        ran = deps.store.optimize()
    except StoreError as exc:
        log.warning("store optimize skipped: %s", exc)
        ran = "skipped"
    from allsuse.server.performance import performance_watch

    performance_watch(deps).forget_series()
    log.info("nightly upkeep: %d equity marks pruned; %s", pruned, ran)
    return pruned, ran


MONITORING_JOBS = ("monitoring-minute", "crowding", "alert-flush", "end-of-day", "weekly-report", "quarterly-report")


class MonitoringJobs:
    """The monitoring modules' jobs as one registry component ("monitoring"): DEGRADED while one of them failed
    its last run (the scheduler logs the error), RUNNING again after a run succeeds. Not critical: monitoring
    that fails leaves decisions served."""

    name = "monitoring"
    depends_on: tuple[str, ...] = ("store", "scheduler", "alerts")
    critical = False

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def start(self) -> None:
        """The jobs are the scheduler's; nothing to open."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def health(self) -> State:
        failing = [j.name for j in self.scheduler.jobs if j.name in MONITORING_JOBS and j.last_error is not None]
        if failing:
            log.warning("monitoring jobs failing: %s", ", ".join(failing))
            return State.DEGRADED
        return State.RUNNING


def install(service: Service) -> None:
    """Adds the jobs to the service's scheduler."""
    deps = service.deps

    async def market_tick(slot: dt.datetime) -> None:
        session = NYSE.session(slot.date())
        service.metrics.market_open.set(1 if session is not None and session.contains(slot) else 0)
        deps.bus.publish(
            "market.tick", {"at": slot.isoformat(), "closes": session.close.isoformat() if session else None}
        )

    async def refresh_gauges(slot: dt.datetime) -> None:
        cache = deps.response_cache
        stats = cache.stats()
        looked = stats["hits"] + stats["misses"]
        service.metrics.cache_hit_rate.set(stats["hits"] / looked if looked else 0.0)
        commits = deps.store.stats()
        service.metrics.commit_batches.set(commits.batches)

    async def end_of_day(slot: dt.datetime) -> None:
        written = await write_reports(deps, "daily", slot)
        log.info("end-of-day reports for %d portfolios", written)

    async def weekly_reports(slot: dt.datetime) -> None:
        written = await write_reports(deps, "weekly", slot)
        log.info("weekly reports for %d portfolios", written)

    async def quarterly_reports(slot: dt.datetime) -> None:
        written = await write_reports(deps, "quarterly", slot)
        log.info("quarterly reports for %d portfolios", written)

    async def monitoring_minute(slot: dt.datetime) -> None:
        from allsuse.server.books import load_books
        from allsuse.server.compliance import run_sweep
        from allsuse.server.performance import performance_watch
        from allsuse.server.rpc import run_blocking

        at = slot.replace(tzinfo=None)
        books = await run_blocking(load_books, deps, at)  # each portfolio loaded once for both
        await run_sweep(deps, at, books)
        await run_blocking(performance_watch(deps).sweep, at, books)

    async def crowding(slot: dt.datetime) -> None:
        from allsuse.server.books import load_books
        from allsuse.server.crowding import crowding_watch
        from allsuse.server.rpc import run_blocking
        from allsuse.server.stress_watch import stress_watch

        at = slot.replace(tzinfo=None)
        books = await run_blocking(load_books, deps, at)
        alerts = await run_blocking(crowding_watch(deps).sweep, at, books)
        for alert in alerts:
            await alert_system(deps).raise_alert(alert)
        await run_blocking(stress_watch(deps).sweep, at, books)

    async def flush_alerts(slot: dt.datetime) -> None:
        await alert_system(deps).flush()  # a burst's summary once its window has closed

    async def nightly(slot: dt.datetime) -> None:
        from allsuse.server.rpc import run_blocking

        # The full check (`allsuse audit verify --full`): the database's integrity, the chain, every record.
        report = await run_blocking(deps.store.verify_full)
        if not report.ok:
            await alert_system(deps).raise_alert(
                {"severity": "CRITICAL", "code": "AUDIT_BROKEN", "message": str(report)[:4000]}
            )
            log.error("audit verify --full failed: %s", report)
            return  # no backup of a damaged or tampered store: the last good ones are kept
        await run_blocking(maintain, deps, slot.date())
        if deps.config.store.url.startswith("postgresql"):
            return  # PostgreSQL is backed up with pg_dump by the operator (docs/store.md)
        folder = Path(deps.config.store.url).resolve().parent / "backups"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"allsuse-{slot:%Y%m%d}.db"
        if not target.exists():
            await run_blocking(deps.store.backup, target)
        for old in sorted(folder.glob("allsuse-*.db"))[:-BACKUPS_KEPT]:
            old.unlink()

    scheduler = deps.scheduler
    scheduler.add("market-tick", MarketHours(), market_tick)
    scheduler.add("refresh-gauges", Every(dt.timedelta(minutes=5)), refresh_gauges)
    scheduler.add("monitoring-minute", MarketHours(), monitoring_minute)
    scheduler.add("crowding", MarketHours(dt.timedelta(minutes=5)), crowding)
    scheduler.add("alert-flush", Every(dt.timedelta(minutes=1)), flush_alerts)
    scheduler.add("end-of-day", DailyAt(dt.time(16, 15), trading_days_only=True), end_of_day)
    scheduler.add("weekly-report", WeeklyAt(SATURDAY, dt.time(9, 0)), weekly_reports)
    scheduler.add("quarterly-report", QuarterEndAt(dt.time(16, 30)), quarterly_reports)
    scheduler.add("nightly", DailyAt(dt.time(2, 0)), nightly)
    service.registry.add(MonitoringJobs(scheduler))
