"""Market data's pure rules: ticks and their quality, symbols, tier gating and request
windows. No I/O, no clock reads, no grpc, no SQLAlchemy: callers pass times in."""
