"""What the exporter, the receiver and the job programs share: config, secrets, logging."""
