"""The scheduler process: SLA sweeps, notifications and housekeeping, one active at a time."""
