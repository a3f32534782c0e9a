"""proofline-identity: identity keys made on the client and backed up as SLIP-0039 shares."""
