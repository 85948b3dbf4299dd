"""Backtests a portfolio manager can trust: many symbols in the real account layout, costs and cash interest,
benchmarks run on the same data, readable outputs, and parameter sweeps on Ray.

Modules: `costs` (commissions, spread, interest), `run` (the record one backtest produces), and the modules that
build on them: data loading and alignment, the simulation, benchmarks, the HTML report, sweeps.
"""
