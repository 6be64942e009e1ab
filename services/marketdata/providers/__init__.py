"""Quote providers: where ticks come from. ``MBT_MARKETDATA_PROVIDER`` picks one:
``replay`` (recorded ticks in simulated time) or ``alpaca`` (Alpaca market data)."""
