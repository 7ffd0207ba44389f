"""stackmedic exporter."""
