"""SmartID MongoDB operator: schema, backups, recovery and outage proof for one database."""

__version__ = "0.1.0"

GROUP = "smartid.io"
VERSION = "v1alpha1"
PLURAL = "smartiddatabases"
KIND = "SmartIDDatabase"
