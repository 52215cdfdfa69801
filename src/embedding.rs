//! Embedding and ranking losses: row-wise distances and dot products with gradients for every input.
