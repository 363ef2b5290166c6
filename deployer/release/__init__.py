"""The release: its loop, its steps, gating, fleets and baking."""
