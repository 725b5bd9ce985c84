"""Token rotation: runbooks, the audited checklist service, and automatic checks."""
