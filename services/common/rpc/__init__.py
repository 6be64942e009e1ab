"""gRPC plumbing: the server bootstrap, interceptors, request context, channels, calls to other services, keepalive and retry policy, generated-code helpers."""
