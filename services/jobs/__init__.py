"""The platform's jobs room: the Celery app, the market-clock schedule, the per-key record
of what was done, and the registry of tasks (each defined in its owning service's
``tasks.py``). See README, "Jobs"."""
