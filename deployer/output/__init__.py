"""What a run shows: events, live progress, summary, timeline picture, notifications."""
