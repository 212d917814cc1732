"""Channel adapters: one module per channel, each parsing and verifying its inbound side and
rendering its outbound side. Only these modules know platform formats."""
