"""This project's own sampling core, k-diffusion style (see docs/SAMPLING.md)."""
