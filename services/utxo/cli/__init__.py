"""Operator CLIs (seed 000): `utxo-manager` and `sweep-change`. They talk to the utxo service over
gRPC with an admin bearer token and never take a private key."""
