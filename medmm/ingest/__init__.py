"""medmm.ingest stage."""
