"""Real-but-local stand-ins used by `passops demo` and the tests (in the spirit of `kopf.testing`).

Kept in the package rather than in tests/ because the demo runs on them too: an in-process Kubernetes
API emulator with the API semantics the product relies on, an embedded PostgreSQL, and Stripe event
payloads signed the way Stripe signs them.
"""
