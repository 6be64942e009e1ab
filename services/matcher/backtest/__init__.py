"""Backtests on the live engine: the matcher's fill function and book, the orders and
accounts rules, run over a historical feed in simulated time (services/matcher/backtest)."""
