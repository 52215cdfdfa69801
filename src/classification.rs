//! Element-wise classification losses: binary cross-entropy (on probabilities and on logits),
//! focal, the hinge family, exponential, soft-margin and KL divergence.
