"""The rules service: rules and templates (admin API), the rule engine consumer, the audit log."""
