"""Who may call what: tokens, authentication, the access policy, rate limits, tiers, shared session state, the audit of ops reads."""
