"""The /sdapi/v1 REST API, compatible with A1111's: models derived from GenerationParams and ExtrasParams,
routes that queue jobs on the same engine as the page, HTTP Basic auth, and A1111's error shape."""
