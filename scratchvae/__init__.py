"""scratchvae: variational autoencoders for text and images, every backward pass by hand."""

__version__ = "0.1.0"
