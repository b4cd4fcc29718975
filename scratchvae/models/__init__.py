"""The VAE models built from the layers (each module registers its gradient checks)."""
