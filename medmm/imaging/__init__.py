"""medmm.imaging stage."""
