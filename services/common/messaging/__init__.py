"""Events between services: the transactional outbox and its relay, the inbox, the topology."""
