"""The webhook gateway: verifies Stripe deliveries and stores each purchase as a PassPurchase.

Stateless; it talks to the Kubernetes API only. ``create_app`` builds the aiohttp application and
``serve`` runs it until cancelled.
"""

from webhook_gateway.app import ConfigurationError, create_app
from webhook_gateway.server import serve

__all__ = ["ConfigurationError", "create_app", "serve"]
