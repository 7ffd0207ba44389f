"""stackmedic jobs."""
