"""`flask demo`: the end-to-end tour on the embedded defaults."""
