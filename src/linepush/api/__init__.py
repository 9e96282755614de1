"""LINE's endpoints as data: per area, a pure function builds each request and parses its answer (no I/O)."""
