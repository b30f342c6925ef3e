"""The events service: the agencies' door (CloudEvents in, events.v1 out, timelines back)."""
