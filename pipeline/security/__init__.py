"""Securing the broker: a throwaway PKI for the local broker, SCRAM credentials and ACLs."""
