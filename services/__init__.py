"""MBT services: one package per service plus the platform kit in services.common."""
