"""People provider: absence analysis and the revocations that simulate a person's loss."""
