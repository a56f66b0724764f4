"""HTTP adapters: Chalice blueprints, one per API surface. Routes parse, call a service, shape the response."""
