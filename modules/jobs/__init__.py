"""One generation job: its parameters, the job as data, the stages that run it (hires fix included), its result and
infotext, img2img batches, grids, live previews and the files it writes."""
