"""medmm.signals stage."""
