"""The activities service. See app.py for how it is wired and DESIGN.md §3 for what it owns."""
