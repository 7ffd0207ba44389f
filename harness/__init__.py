"""What the tests and the benchmarks run against: the real services, started and stopped by PID, and the stand-ins for what cannot run here (Jenkins)."""
