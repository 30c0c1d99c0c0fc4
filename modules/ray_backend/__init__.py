"""Generation on Ray Serve (--ray-address): replicas that run the same engine code, checkpoints routed by
Serve's model multiplexing, progress streamed back, interrupt and skip through a small control actor."""
