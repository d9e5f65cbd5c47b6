"""Pure Linen building blocks shared by all methods."""
