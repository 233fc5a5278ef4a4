"""`passops demo`: the whole product on embedded defaults, with realistic signed Stripe deliveries."""
