"""Monitoring as code: the alerting rules, the scraping objects and the Grafana dashboard,
rendered into deploy/ and charts/ by ``python -m smartid_operator.monitoring write``."""
