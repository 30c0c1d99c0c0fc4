"""Pixels in and out of jobs: input images made uniform, resize modes, outpainting, grids, upscalers and the image
tools a job holds."""
