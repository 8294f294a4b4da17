"""Where backups read from: one module per kind, one protocol (`base.Source`)."""
