"""Where archives go: one module per kind behind one protocol (`base.Destination`)."""
