"""The worker: owns schedules and executes runs (web processes never do)."""
