"""The search service: the plain Searcher class, its Ray Serve deployments, HTTP and gRPC APIs, the web page."""
