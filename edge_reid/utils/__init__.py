"""Small shared helpers (atomic writes, hashing); numpy-free and torch-free."""
