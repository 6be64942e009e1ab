"""What the orders service does, one room per concern: the submit saga (``submit``), the
replace saga (``replace``), the rest of an order's life (``lifecycle``: cancels, fills,
triggers, expiry, housekeeping) and the reads (``reads``). Each change is one unit of work;
calls to market data and accounts happen between units of work, never inside one."""
