"""Orders' pure rules: the Order aggregate and its lifecycle (``model``), and the rules a
submission, a replace and a fill must follow (``rules``). No I/O, no SQLAlchemy, no grpc, no
clock: callers pass values in."""
