"""passops: every paid Stripe Checkout becomes exactly one subscription row, visible in Kubernetes."""

__version__ = "0.1.0"
