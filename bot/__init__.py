"""usage-bot: compare what an LLM provider billed with what the gateway logged."""
