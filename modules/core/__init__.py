"""The core: the engine that runs every job, the services container, the job backends, settings' shared values,
request limits, and the file and memory helpers everything else uses."""
