"""nemotron: the Nemotron 3 Super recipe on Slurm through NeMo-Run."""
