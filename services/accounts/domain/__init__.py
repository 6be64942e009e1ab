"""Accounts' pure rules: the Account aggregate (``account``: cash, positions, holds and the
ledger's own checks) and the rules it applies (``rules``: starting cash, fills on positions,
valuation, buying power, the hold an order version needs). No I/O; prices are passed in."""
