"""Commands beside release: rollback, abort, gc, destroy, recover, settings, logs, exec."""
