"""The cloud layer: signers, credentials, errors, rate budgets and the provider protocol."""
