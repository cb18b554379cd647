"""Import jobs from schedulers: Slurm sacct output and a documented CSV, sent through /v1/batch."""
