"""stackmedic receiver."""
