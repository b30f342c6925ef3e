"""Wire contracts shared by every Avisa service: events, rules, notifications, status changes."""
