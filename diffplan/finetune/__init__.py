"""Fine-tuning trained planners toward a reward (Adjoint Matching)."""
