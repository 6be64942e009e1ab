"""The REST gateway: REST <-> gRPC transcoding driven by the contracts' google.api.http
annotations, the response/error envelopes, identity, and upstream health."""
