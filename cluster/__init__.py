"""Many instances on one PostgreSQL: membership, claims with fencing, events across them."""
