"""A deterministic simulation of the reminder path: the real rule engine and scheduler code on
SQLite and the notifier's real delivery decisions, driven by a virtual clock over an in-memory
bus with Kafka's semantics, through seeded cases and faults. `python -m sim --help`."""
