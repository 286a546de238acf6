"""Training the memory network: losses, schedules, checkpoints and the loop (`vcseg train`)."""
