"""The platform kit every service uses: config, db, outbox/inbox, gRPC bootstrap, clock."""
