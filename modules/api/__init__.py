"""HTTP: the /sdapi/v1 REST API, compatible with A1111's (models derived from GenerationParams and ExtrasParams,
routes that queue jobs on the same engine as the page, HTTP Basic auth, A1111's error shape), and the one web server
with the guards every request passes, A1111's /file= URLs and the API docs page."""
