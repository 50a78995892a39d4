"""Helpers the tests and the benches share (not product code): real servers on loopback ports
(MongoDB-compatible secantusd, Redis, the demo site), TLS certificates, process handling, the
review and crawl fixtures' makers, and the experiments and baselines the benches and tests run.
Installed with the project, so no test or bench edits ``sys.path``; it imports the product
packages and nothing imports it back."""
