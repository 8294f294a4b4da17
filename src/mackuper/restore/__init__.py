"""Restore, verify, browse, download and import: reading back what backups stored."""
