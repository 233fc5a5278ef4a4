"""Support workflow: explain a purchase in plain words, force a resync, manage the pass catalog."""
