"""The full-cluster tier: kind + the Docker image + the Helm chart (opt-in: PASSOPS_TEST_KIND=1)."""
