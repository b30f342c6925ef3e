"""The kit every service shares: settings, Kafka plumbing, database, logging, metrics, HTTP."""
