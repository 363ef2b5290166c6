"""The AWS edge: one adapter per service, the session/endpoint factory, retries and the poller."""
