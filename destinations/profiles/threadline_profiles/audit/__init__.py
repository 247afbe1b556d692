"""The audit log: who looked at whom, when, why and with what result (`audit.log`)."""
