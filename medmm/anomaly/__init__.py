"""medmm.anomaly: label-free anomaly detection on beats/windows and fused embeddings."""
